"""Archive queries in a fresh process: open, connect, grouped percentiles (DuckDB and Polars).

`archive.open(dir)`, the connection (segment index and views), the grouped percentile query on
the `tasks` view (DuckDB, cold then warm; then over `tasks_raw`, to price the view's
deduplication) and the same with Polars over `archive.lazy("tasks")`; rows scanned/s count the
raw rows read. The OS page cache is warm (the archive was just written): "cold" means a new
process and connection.

usage (the child, as the benchmark starts it): python -m bench.archive.query --archive DIR
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from armonik_observe.archive import open as open_archive
from bench import common
from bench.common import CpuSampler
from bench.report import Row, info_row

QUANTILE_SQL = (
    "SELECT partition_id, status, count(*) AS tasks, "
    "quantile_cont(processing_to_end_seconds, 0.5) AS p50, "
    "quantile_cont(processing_to_end_seconds, 0.95) AS p95, "
    "quantile_cont(processing_to_end_seconds, 0.99) AS p99 "
    "FROM tasks GROUP BY ALL ORDER BY ALL"
)
QUERIES = (
    ("duckdb_cold", "grouped p50/p95/p99 of processing time, DuckDB, first query"),
    ("duckdb_warm", "the same query again"),
    ("duckdb_raw_warm", "the same over tasks_raw: what the view's deduplication costs"),
    ("polars_cold", "the same with Polars over archive.lazy('tasks'), first query"),
    ("polars_warm", "the same again"),
)
MEAN_SQL = ("SELECT count(*), avg(processing_to_end_seconds), min(processing_to_end_seconds), "
            "max(processing_to_end_seconds) FROM tasks")


def query_worker(directory: Path) -> dict[str, Any]:
    """In a fresh process: open the archive, run the grouped percentiles (DuckDB, Polars)."""
    import polars as pl  # already loaded by armonik_observe.archive; named here for the query

    started = psutil.Process().create_time()
    result: dict[str, Any] = {"startup_and_imports_s": round(time.time() - started, 3)}
    timings: dict[str, dict[str, float]] = {}

    def timed(name: str, call: Callable[[], Any]) -> Any:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        value = call()
        timings[name] = {"wall_s": round(time.perf_counter() - wall0, 4),
                         "cpu_s": round(time.process_time() - cpu0, 4)}
        return value

    archive = timed("open", lambda: open_archive(directory))
    timed("connect", archive.__enter__)
    try:
        raw_rows = archive.stats()["tasks"].rows
        connection = archive.connection
        duck = timed("duckdb_cold", lambda: connection.execute(QUANTILE_SQL).fetchall())
        timed("duckdb_warm", lambda: connection.execute(QUANTILE_SQL).fetchall())
        # The same over every raw row: what the view's deduplication (a window over task_id)
        # costs.
        raw_sql = QUANTILE_SQL.replace("FROM tasks ", "FROM tasks_raw ")
        timed("duckdb_raw_warm", lambda: connection.execute(raw_sql).fetchall())
        mean = timed("duckdb_mean", lambda: connection.execute(MEAN_SQL).fetchall()[0])
        files = len(archive.files("tasks"))
    finally:
        archive.__exit__(None, None, None)
    col = pl.col("processing_to_end_seconds")

    def polars_query() -> Any:
        return (archive.lazy("tasks").group_by("partition_id", "status")
                .agg(pl.len().alias("tasks"), col.quantile(0.5, "linear").alias("p50"),
                     col.quantile(0.95, "linear").alias("p95"),
                     col.quantile(0.99, "linear").alias("p99"))
                .sort("partition_id", "status").collect())

    frame = timed("polars_cold", polars_query)
    timed("polars_warm", polars_query)
    groups = [list(row) for row in duck]
    polar_rows = [list(row) for row in frame.rows()]
    agree = len(groups) == len(polar_rows) and all(
        a[:3] == b[:3] and all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
                               for x, y in zip(a[3:], b[3:], strict=True))
        for a, b in zip(groups, polar_rows, strict=True))
    result.update({"raw_rows": raw_rows, "files": files, "timings": timings,
                   "groups": groups, "polars_agrees": agree,
                   "tasks": sum(row[2] for row in groups),
                   "mean": {"tasks": mean[0], "avg_s": mean[1], "min_s": mean[2],
                            "max_s": mean[3]},
                   "threads": psutil.Process().num_threads()})
    return result


def run_query_worker(directory: Path) -> dict[str, Any]:
    """query_worker in a child process; its JSON with rows scanned per second added."""
    cmd = [sys.executable, "-m", "bench.archive.query", "--archive", str(directory)]
    with CpuSampler(None) as machine:
        started = time.monotonic()
        report, ended = common.run_json(cmd, timeout=300)
    report["child_wall_s"] = round(ended - started, 3)
    report["machine_busy_share"] = round(machine.cpu_between(started, ended)
                                         / max(ended - started, 1e-9), 3)
    for name, timing in report["timings"].items():
        if name.startswith(("duckdb", "polars")):
            timing["rows_scanned_per_s"] = round(report["raw_rows"] / timing["wall_s"], 1)
            timing["rows_per_cpu_s"] = round(report["raw_rows"] / max(timing["cpu_s"], 1e-9), 1)
    return report


def query_rows(label: str, report: dict[str, Any]) -> list[Row]:
    """Rows for one fresh-process query run."""
    t = report["timings"]
    rows = [
        info_row(f"query {label}: open() | connect",
                 f"{1000 * t['open']['wall_s']:.1f} | {1000 * t['connect']['wall_s']:.0f}", "ms",
                 means="archive.open(), then the connection: segment index and views",
                 note=f"{report['files']} files, {report['raw_rows']:,} raw rows; process "
                      f"start+imports {report['startup_and_imports_s']:.2f}s"),
    ]
    for name, what in QUERIES:
        timing = t[name]
        rows.append(info_row(
            f"query {label}: {name.replace('_', ' ').replace('raw', 'tasks_raw')}",
            timing["wall_s"], "s", means=what,
            note=f"{timing['rows_scanned_per_s'] / 1e6:.2f}M rows/s, "
                 f"{timing['rows_per_cpu_s'] / 1e6:.2f}M rows/CPU-s"))
    rows.append(Row(f"query {label}: Polars agrees with DuckDB",
                    "yes" if report["polars_agrees"] else "NO", "", "yes",
                    "ok" if report["polars_agrees"] else "DIFFER",
                    "the same groups and percentiles from both engines",
                    f"{len(report['groups'])} groups, {report['tasks']:,} tasks"))
    return rows


def first_answer_s(query: dict[str, Any]) -> float:
    """open() + connect + the cold grouped-percentile query of one query_worker run."""
    t = query["timings"]
    return float(t["open"]["wall_s"] + t["connect"]["wall_s"] + t["duckdb_cold"]["wall_s"])


def group_of(query: dict[str, Any], partition: str) -> list[Any] | None:
    """The grouped-percentile row of one partition's COMPLETED tasks."""
    return next((row for row in query["groups"]
                 if row[0] == partition and row[1] == "COMPLETED"), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, required=True)
    args = parser.parse_args()
    print(json.dumps(query_worker(args.archive)), flush=True)


if __name__ == "__main__":
    main()
