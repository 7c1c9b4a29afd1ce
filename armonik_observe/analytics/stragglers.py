"""What dragged: stragglers (tasks slower than k x their group's median), skew (max / median per
group), retries (chains of attempts through `retry_of_ids`) and errors grouped by message."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from armonik_observe.analytics.durations import MEASURES, check_columns

DEFAULT_FACTOR = 3.0
DEFAULT_MEASURE = "processing_to_end"
DEFAULT_GROUPS = ("partition_id",)
FAILED = ("ERROR", "TIMEOUT", "RETRIED", "CANCELLED")


def _measured(tasks: pl.LazyFrame, measure: str, by: Sequence[str]) -> pl.LazyFrame:
    check_columns(by)
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r}; use any of {', '.join(MEASURES)}")
    return tasks.select("task_id", *by, "pod_hostname", "status",
                        MEASURES[measure].alias("seconds")).drop_nulls("seconds")


def skew(tasks: pl.LazyFrame, measure: str = DEFAULT_MEASURE,
         by: Sequence[str] = DEFAULT_GROUPS) -> pl.DataFrame:
    """One row per group: tasks, median, max (seconds) and skew = max / median (null when the
    median is 0)."""
    median = pl.col("seconds").median()
    return (_measured(tasks, measure, by).group_by(*by)
            .agg(pl.len().alias("tasks"), median.alias("median"),
                 pl.col("seconds").max().alias("max"))
            .with_columns(pl.when(pl.col("median") > 0)
                          .then(pl.col("max") / pl.col("median")).alias("skew"))
            .sort(*by).collect())


def stragglers(tasks: pl.LazyFrame, factor: float = DEFAULT_FACTOR,
               measure: str = DEFAULT_MEASURE, by: Sequence[str] = DEFAULT_GROUPS) -> pl.DataFrame:
    """Tasks whose measure exceeds `factor` x their group's median (the median itself over every
    task of the group), slowest relative to it first: task_id, the group columns, pod_hostname,
    status, seconds, median, ratio."""
    measured = _measured(tasks, measure, by)
    median = pl.col("seconds").median()
    medians = measured.group_by(*by).agg(median.alias("median")) if by else measured.select(
        median.alias("median"))
    joined = measured.join(medians, on=list(by), nulls_equal=True) if by else \
        measured.join(medians, how="cross")
    return (joined.filter(pl.col("seconds") > factor * pl.col("median"))
            .with_columns((pl.col("seconds") / pl.col("median")).alias("ratio"))
            .sort("ratio", "task_id", descending=[True, False]).collect())


def retry_chains(tasks: pl.LazyFrame) -> pl.DataFrame:
    """One row per task retried at least once: first_task_id (the first attempt), attempts,
    statuses (each attempt's, in order, joined by '>'), final_task_id, final_status and
    retried_seconds (the processing_to_end of every attempt but the last)."""
    first = pl.coalesce(pl.col("retry_of_ids").list.first(), pl.col("task_id"))
    attempts = (tasks.select(first.alias("first_task_id"), "task_id", "status", "created_at",
                             pl.col("processing_to_end_seconds").fill_null(0.0).alias("work"),
                             pl.col("retry_of_ids").list.len().fill_null(0).alias("_rank"))
                .sort("first_task_id", "_rank", "created_at", "task_id"))
    return (attempts.group_by("first_task_id", maintain_order=True)
            .agg(pl.len().alias("attempts"), pl.col("status").str.join(">").alias("statuses"),
                 pl.col("task_id").last().alias("final_task_id"),
                 pl.col("status").last().alias("final_status"),
                 pl.col("work").head(pl.len() - 1).sum().alias("retried_seconds"))
            .filter(pl.col("attempts") > 1).collect())


def errors(tasks: pl.LazyFrame) -> pl.DataFrame:
    """Attempts that ended without completing, by status and message (the output error, else
    the status message): tasks, first and last end, one example task id; most frequent first."""
    message = pl.when(pl.col("error").fill_null("") != "").then(pl.col("error")).otherwise(
        pl.col("status_message").fill_null(""))
    return (tasks.filter(pl.col("status").is_in(FAILED))
            .select("status", message.alias("message"), "ended_at", "task_id")
            .group_by("status", "message")
            .agg(pl.len().alias("tasks"), pl.col("ended_at").min().alias("first_ended_at"),
                 pl.col("ended_at").max().alias("last_ended_at"),
                 pl.col("task_id").min().alias("example_task_id"))
            .sort("tasks", "status", "message", descending=[True, False, False]).collect())
