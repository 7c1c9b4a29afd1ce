"""Comparison of two sessions: per measure and partition (and over all partitions, `*`), how
much slower or faster a session was than a baseline, in seconds and percent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from armonik_observe.analytics.durations import MEASURES, duration_stats

ALL_PARTITIONS = "*"
STATISTICS = ("mean", "p50", "p95")
# Changes smaller than this share of the baseline are "same": float noise, not a change.
SAME_WITHIN = 1e-9


def _stats(tasks: pl.LazyFrame, statistics: Sequence[str]) -> pl.LazyFrame:
    overall = duration_stats(tasks).with_columns(pl.lit(ALL_PARTITIONS).alias("partition_id"))
    parts = duration_stats(tasks, ("partition_id",))
    columns = ["partition_id", "measure", "count", *statistics]
    return pl.concat([overall.select(columns), parts.select(columns)]).unpivot(
        index=["partition_id", "measure", "count"], variable_name="statistic")


def _rank(column: str, order: Sequence[str]) -> pl.Expr:
    return pl.col(column).replace_strict({name: i for i, name in enumerate(order)},
                                         return_dtype=pl.Int32)


def change(delta: float | None, baseline: float | None) -> str:
    """'slower', 'faster' or 'same' ('' when either side is missing)."""
    if delta is None or baseline is None:
        return ""
    if abs(delta) <= SAME_WITHIN * max(abs(baseline), 1e-12):
        return "same"
    return "slower" if delta > 0 else "faster"


def compare(baseline: pl.LazyFrame, session: pl.LazyFrame,
            statistics: Sequence[str] = STATISTICS) -> pl.DataFrame:
    """One row per partition (`*` first: every partition), measure and statistic present in
    either session: baseline and session values and tasks, delta_seconds (session - baseline),
    delta_percent (of the baseline; null when it is 0) and change."""
    keys = ["partition_id", "measure", "statistic"]
    joined = (_stats(baseline, statistics).rename({"value": "baseline", "count": "baseline_tasks"})
              .join(_stats(session, statistics).rename({"value": "session",
                                                        "count": "session_tasks"}),
                    on=keys, how="full", coalesce=True)
              .with_columns((pl.col("session") - pl.col("baseline")).alias("delta_seconds"))
              .with_columns(pl.when(pl.col("baseline") != 0)
                            .then(100 * pl.col("delta_seconds") / pl.col("baseline"))
                            .alias("delta_percent"))
              .collect())
    rows = joined.with_columns(pl.Series("change", [
        change(d, b) for d, b in zip(joined["delta_seconds"], joined["baseline"], strict=True)]))
    return rows.sort(pl.col("partition_id") != ALL_PARTITIONS, "partition_id",
                     _rank("measure", tuple(MEASURES)), _rank("statistic", statistics)).select(
        *keys, "baseline_tasks", "session_tasks", "baseline", "session", "delta_seconds",
        "delta_percent", "change")


def compare_totals(baseline: Mapping[str, float | None],
                   session: Mapping[str, float | None]) -> list[dict[str, Any]]:
    """Session-wide figures (makespan, critical path, ...) compared the same way; a figure in
    seconds is slower or faster, any other (the parallelism ratio) higher or lower."""
    rows = []
    for name, before in baseline.items():
        after = session.get(name)
        delta = None if before is None or after is None else after - before
        percent = None if delta is None or not before else 100 * delta / before
        verdict = change(delta, before)
        if not name.endswith("_seconds"):
            verdict = {"slower": "higher", "faster": "lower"}.get(verdict, verdict)
        rows.append({"figure": name, "baseline": before, "session": after, "delta": delta,
                     "delta_percent": percent, "change": verdict})
    return rows
