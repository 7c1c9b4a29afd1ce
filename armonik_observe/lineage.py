"""Which task produced a result, and so which task a task waited for: one rule, one place.

A task never waits for another task, only for results (its `data_dependencies`). The producer
of a result is:

- its `owner_task_id` in the results table, when the archive swept it (the final owner: a task
  that hands one of its expected outputs to a subtask, a RESULT_OWNER_UPDATE, leaves the
  subtask as owner);
- else the last task, by creation time, whose `expected_output_ids` held it. Subtasks that take
  over a parent's output are created after it, and a retry after the attempt it replaces, so
  the last one is the owner after hand-overs and the attempt that ran last.

Traces link a task's span to its producers' spans with this rule, and analytics draws the task
graph (edges, critical path) with it.
"""

from __future__ import annotations

import polars as pl

PRODUCERS_SCHEMA = {"result_id": pl.String, "producer_task_id": pl.String}


def producers(tasks: pl.LazyFrame, results: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """result_id -> producer_task_id, by the rule above.

    `tasks` needs task_id, created_at and expected_output_ids; `results`, when given,
    result_id and owner_task_id (an empty owner falls back to the tasks).
    """
    from_tasks = (
        tasks.select("task_id", "created_at", pl.col("expected_output_ids").alias("result_id"))
        .explode("result_id")
        .drop_nulls("result_id")
        .sort("created_at", "task_id", nulls_last=False)
        .group_by("result_id")
        .agg(pl.col("task_id").last().alias("producer_task_id"))
    )
    if results is None:
        return from_tasks.cast(PRODUCERS_SCHEMA)  # type: ignore[arg-type]
    owners = results.select("result_id", pl.col("owner_task_id").alias("owner")).filter(
        pl.col("owner").is_not_null() & (pl.col("owner") != ""))
    return (
        from_tasks.join(owners, on="result_id", how="full", coalesce=True)
        .select("result_id", pl.coalesce("owner", "producer_task_id").alias("producer_task_id"))
        .cast(PRODUCERS_SCHEMA)  # type: ignore[arg-type]
    )


def dependency_edges(tasks: pl.LazyFrame, results: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """(task_id, result_id, producer_task_id) for each data dependency whose producer is known."""
    needs = (
        tasks.select("task_id", pl.col("data_dependencies").alias("result_id"))
        .explode("result_id")
        .drop_nulls("result_id")
    )
    return needs.join(producers(tasks, results), on="result_id", how="inner").filter(
        pl.col("producer_task_id") != pl.col("task_id"))
