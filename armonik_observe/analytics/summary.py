"""The stable output formats of `armonik-observe analyze`: a JSON list of session objects, a CSV
row per session, and tables for a terminal (docs/analytics.md describes each field).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from armonik_observe.analytics.durations import MEASURES, STATISTICS
from armonik_observe.model import TaskStatus

if TYPE_CHECKING:
    from armonik_observe.analytics.analysis import SessionAnalysis

ERRORS_SHOWN = 20  # the most frequent (status, message) groups in a session object
NO_FINISHED_TASK = "no finished task: durations, makespan and the task graph need ended tasks"
TOTALS = ("makespan_seconds", "critical_path_seconds", "makespan_lower_bound_seconds",
          "parallelism_ratio")


def _number(value: Any) -> Any:
    """A JSON number: NaN and infinities become null, integers stay integers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def timestamp(value: datetime | None) -> str | None:
    """An ISO 8601 UTC time with microseconds and a Z, e.g. 2026-01-01T10:00:00.000001Z."""
    if value is None:
        return None
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


def durations_object(stats: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """Rows of duration_stats (no group) keyed by measure, every measure present (count 0 and
    nulls when no task has it)."""
    found = {row["measure"]: row for row in stats.iter_rows(named=True)}
    empty = {"count": 0, **dict.fromkeys(STATISTICS[1:])}
    return {name: {stat: _number(found[name][stat]) for stat in STATISTICS} if name in found
            else dict(empty) for name in MEASURES}


def session_summary(analysis: SessionAnalysis) -> dict[str, Any]:
    """The JSON object of one session."""
    tasks = analysis.tasks
    ended = analysis.ended
    stats = analysis.durations_by_partition
    by_partition = {
        partition: {"tasks": count, "durations": durations_object(
            stats.filter(pl.col("partition_id") == partition))}
        for partition, count in tasks.group_by("partition_id").len().sort("partition_id")
        .iter_rows()}
    retries = analysis.retries
    return {
        "session_id": analysis.session_id,
        "finished": ended > 0,
        "note": None if ended else NO_FINISHED_TASK,
        "tasks": {"count": tasks.height, "ended": ended, "by_status": analysis.by_status},
        "first_created_at": timestamp(tasks["created_at"].min()),  # type: ignore[arg-type]
        "last_ended_at": timestamp(tasks["ended_at"].max()),  # type: ignore[arg-type]
        "durations": durations_object(analysis.durations),
        "by_partition": by_partition,
        "makespan_seconds": analysis.makespan,
        "critical_path_seconds": analysis.critical_path.seconds,
        "critical_path_tasks": len(analysis.critical_path.task_ids),
        "makespan_lower_bound_seconds": analysis.lower_bound.seconds,
        "parallelism_ratio": _number(analysis.parallelism),
        "stragglers": {"factor": analysis.options.straggler_factor,
                       "measure": analysis.options.straggler_measure,
                       "count": analysis.stragglers.height},
        "retries": {"retried_tasks": retries.height,
                    "recovered": retries.filter(pl.col("final_status") == "COMPLETED").height,
                    "attempts": int(retries["attempts"].sum())},
        "errors": [{"status": row["status"], "message": row["message"], "tasks": row["tasks"]}
                   for row in analysis.errors.head(ERRORS_SHOWN).iter_rows(named=True)],
    }


def to_json(objects: Sequence[Mapping[str, Any]]) -> str:
    """The JSON format: a list of objects, keys in a fixed order, no NaN."""
    return json.dumps(list(objects), indent=2, allow_nan=False, default=str) + "\n"


# -- CSV ---------------------------------------------------------------------------------------

CSV_STATUSES = tuple(status.name for status in TaskStatus)


def csv_columns() -> list[str]:
    """The CSV header: one row per session."""
    return ["session_id", "tasks", "ended", *(f"tasks_{s}" for s in CSV_STATUSES),
            "first_created_at", "last_ended_at", *TOTALS, "critical_path_tasks",
            "stragglers", "retried_tasks",
            *(f"{measure}_{stat}" for measure in MEASURES for stat in STATISTICS)]


def csv_row(summary: Mapping[str, Any]) -> list[Any]:
    """One session's CSV row, in csv_columns() order."""
    tasks = summary["tasks"]
    return [summary["session_id"], tasks["count"], tasks["ended"],
            *(tasks["by_status"].get(s, 0) for s in CSV_STATUSES),
            summary["first_created_at"], summary["last_ended_at"],
            *(summary[name] for name in TOTALS), summary["critical_path_tasks"],
            summary["stragglers"]["count"], summary["retries"]["retried_tasks"],
            *(summary["durations"][m][s] for m in MEASURES for s in STATISTICS)]


def to_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """CSV with a header; empty cells for nulls, floats in full precision."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if v is None else repr(v) if isinstance(v, float) else v
                       for v in row] for row in rows])
    return buffer.getvalue()


# -- tables ----------------------------------------------------------------------------------


def seconds(value: float | None) -> str:
    """Seconds for a person: 3 decimals below 100 s, 1 above."""
    if value is None:
        return "-"
    return f"{value:.3f}" if abs(value) < 100 else f"{value:,.1f}"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """An aligned plain-text table: text to the left, numbers to the right."""
    cells = [list(header), *([("-" if v is None else str(v)) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [all(_numeric(row[i]) for row in cells[1:]) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if n else c.ljust(w)
                       for c, w, n in zip(row, widths, numeric, strict=True)).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _numeric(text: str) -> bool:
    return text.replace(",", "").replace(".", "", 1).lstrip("-+").replace("%", "").isdigit() \
        or text == "-"


def session_table(summary: Mapping[str, Any]) -> str:
    """One session for a terminal: counts, totals, then the durations."""
    tasks = summary["tasks"]
    statuses = ", ".join(f"{name} {count}" for name, count in tasks["by_status"].items())
    lines = [f"session {summary['session_id']}",
             f"  tasks {tasks['count']} ({statuses or 'none'}), {tasks['ended']} ended"]
    if summary["note"]:
        return "\n".join([*lines, f"  {summary['note']}"]) + "\n"
    parallelism = summary["parallelism_ratio"]
    lines += [
        f"  makespan {seconds(summary['makespan_seconds'])} s, critical path "
        f"{seconds(summary['critical_path_seconds'])} s ({summary['critical_path_tasks']} "
        f"tasks), lower bound {seconds(summary['makespan_lower_bound_seconds'])} s, "
        f"parallelism {'-' if parallelism is None else f'{parallelism:.2f}'}",
        f"  retried tasks {summary['retries']['retried_tasks']} "
        f"({summary['retries']['recovered']} recovered), stragglers "
        f"{summary['stragglers']['count']} (> {summary['stragglers']['factor']:g} x median "
        f"{summary['stragglers']['measure']})", ""]
    rows = [[name, stats["count"], *(seconds(stats[s]) for s in STATISTICS[1:])]
            for name, stats in summary["durations"].items()]
    lines.append(table(["measure (s)", *STATISTICS], rows))
    for error in summary["errors"][:5]:
        message = error["message"] or "(no message)"
        lines.append(f"  {error['tasks']} x {error['status']}: {message}")
    return "\n".join(lines) + "\n"
