"""Pods: how busy each pod that ran tasks was, and the Gantt chart of what ran where.

A task occupies its pod from started_at to ended_at. A pod is busy while at least one of its
tasks runs (a pod with several slots runs tasks side by side: its busy time is the union of
their intervals, its task time their sum). Utilization is busy time over the session's wall
time (first created_at to last ended_at); the idle share is the rest. Tasks that never started,
or have not ended, take no pod time.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from armonik_observe.analytics.durations import seconds_between

MAX_BARS = 10_000


def _intervals(tasks: pl.LazyFrame) -> pl.LazyFrame:
    return (tasks.filter(pl.col("pod_hostname").is_not_null() & (pl.col("pod_hostname") != "")
                         & pl.col("started_at").is_not_null() & pl.col("ended_at").is_not_null())
            .select("pod_hostname", "task_id", "status",
                    pl.col("started_at").alias("start"), pl.col("ended_at").alias("end")))


def _with_seconds(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.with_columns(seconds_between("start", "end").alias("seconds"))


def busy_blocks(intervals: pl.LazyFrame, gap_us: int = 0) -> pl.LazyFrame:
    """Each pod's busy periods: its intervals merged where they overlap, or where less than
    `gap_us` separates them. Columns pod_hostname, start, end, tasks."""
    ordered = intervals.sort("pod_hostname", "start", "end")
    reach = pl.col("end").cum_max().shift(1).over("pod_hostname")
    gap = pl.duration(microseconds=gap_us)
    block = ((pl.col("start") > reach + gap).fill_null(True)).cum_sum().over("pod_hostname")
    return (ordered.with_columns(block.alias("_block"))
            .group_by("pod_hostname", "_block")
            .agg(pl.col("start").min(), pl.col("end").max(), pl.len().alias("tasks"))
            .drop("_block").sort("pod_hostname", "start"))


def pod_usage(tasks: pl.LazyFrame, wall_seconds: float | None) -> pl.DataFrame:
    """One row per pod: tasks, task_seconds (their sum), busy_seconds (their union),
    utilization (busy over the wall time), idle_share (1 - utilization), by pod name."""
    intervals = _intervals(tasks)
    work = _with_seconds(intervals).group_by("pod_hostname").agg(
        pl.len().alias("tasks"), pl.col("seconds").sum().alias("task_seconds"))
    busy = _with_seconds(busy_blocks(intervals)).group_by("pod_hostname").agg(
        pl.col("seconds").sum().alias("busy_seconds"))
    usage = work.join(busy, on="pod_hostname").sort("pod_hostname")
    wall = wall_seconds or None
    return usage.with_columns(
        (pl.col("busy_seconds") / wall if wall else pl.lit(None, pl.Float64)).alias("utilization"),
    ).with_columns((1 - pl.col("utilization")).alias("idle_share")).collect()


@dataclass(frozen=True)
class Gantt:
    """Bars of the Gantt chart: pod_hostname, task_id, status (both "" for a busy period), start,
    end, and the number of tasks the bar stands for (`tasks`).

    Up to `MAX_BARS` tasks, one bar each; past that, each pod's busy periods, gaps shorter than
    `merged_gap_seconds` merged, so that the bars stay under the limit."""

    bars: pl.DataFrame
    tasks: int
    merged_gap_seconds: float | None

    @property
    def downsampled(self) -> bool:
        """Whether bars stand for busy periods rather than single tasks."""
        return self.merged_gap_seconds is not None


def gantt(tasks: pl.LazyFrame, max_bars: int = MAX_BARS) -> Gantt:
    """The Gantt bars of the tasks that ran on a pod."""
    intervals = _intervals(tasks).collect()
    count = intervals.height
    if count <= max_bars:
        bars = intervals.sort("pod_hostname", "start").with_columns(pl.lit(1).alias("tasks"))
        return Gantt(bars, count, None)
    span_us = intervals.select((pl.col("end").max() - pl.col("start").min())
                               .dt.total_microseconds()).item()
    gap = max(span_us // 4000, 1)
    lazy = intervals.lazy()
    bars = busy_blocks(lazy, 0).collect()
    gap_used = 0
    while bars.height > max_bars:
        gap_used = gap
        bars = busy_blocks(lazy, gap).collect()
        gap *= 2
    merged = bars.with_columns(pl.lit("").alias("status"), pl.lit("").alias("task_id"))
    return Gantt(merged.select([*intervals.columns, "tasks"]), count, gap_used / 1e6)
