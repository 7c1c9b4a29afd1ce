"""The task graph of a session: which task could not start before which ended, the critical path,
the makespan lower bound and the parallelism achieved.

Edges run from a task that had to end to a task that waited for it:

- submission: `created_by` submitted the task (ArmoniK submits subtasks when their parent ends);
- data: the producer of a result the task depends on (`lineage.producers`, the rule traces share);
- retry: the attempt a retry replaces (the last of `retry_of_ids`).

A task's work is its `processing_to_end_seconds` (started to ended): what it would still take with
infinitely many workers, where queueing, acquisition and fetch are taken as waits that enough
workers remove. So:

- the makespan lower bound is the longest chain of work through the graph;
- the critical path is what made the session end when it did: from the last task to end, back
  through the predecessor that ended last, to a task that waited for none; its length runs from
  the creation of its first task to the end of its last;
- the parallelism ratio is the total work over the makespan (the mean number of tasks running).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from armonik_observe.lineage import dependency_edges

EDGE_SCHEMA = {"source": pl.String, "target": pl.String, "kind": pl.String}
WORK = "processing_to_end_seconds"


def task_edges(tasks: pl.LazyFrame, results: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """(source, target, kind) for each edge whose two tasks are both in `tasks`."""
    submission = (tasks.filter(pl.col("created_by").is_not_null() & (pl.col("created_by") != ""))
                  .select(pl.col("created_by").alias("source"), pl.col("task_id").alias("target"),
                          pl.lit("submission").alias("kind")))
    data = dependency_edges(tasks, results).select(
        pl.col("producer_task_id").alias("source"), pl.col("task_id").alias("target"),
        pl.lit("data").alias("kind"))
    retry = (tasks.filter(pl.col("retry_of_ids").list.len() > 0)
             .select(pl.col("retry_of_ids").list.last().alias("source"),
                     pl.col("task_id").alias("target"), pl.lit("retry").alias("kind")))
    edges = pl.concat([edge.cast(EDGE_SCHEMA) for edge in (submission, data, retry)])  # type: ignore[arg-type]
    return (edges.join(tasks.select(pl.col("task_id").alias("source")), on="source", how="semi")
            .unique(maintain_order=True))


def makespan_seconds(tasks: pl.LazyFrame) -> float | None:
    """Last ended_at - first created_at, in seconds; None before any task ended."""
    end, start = tasks.select(pl.col("ended_at").max(), pl.col("created_at").min()).collect().row(0)
    if end is None or start is None:
        return None
    return float((end - start).total_seconds())


def parallelism_ratio(tasks: pl.LazyFrame, makespan: float | None) -> float | None:
    """Total work over the makespan: how many tasks ran at once on average."""
    if not makespan:
        return None
    return float(tasks.select(pl.col(WORK).sum()).collect().item()) / makespan


@dataclass(frozen=True)
class Chain:
    """A chain of tasks through the graph: the tasks in order, with the edge that led to each
    (empty for the first), and its length in seconds."""

    task_ids: tuple[str, ...]
    via: tuple[str, ...]
    seconds: float | None


def critical_path(tasks: pl.DataFrame, edges: pl.DataFrame) -> Chain:
    """The chain the session's end waited on: from the last task to end, back through the
    predecessor that ended last (ties: the greatest task id)."""
    ended = tasks.filter(pl.col("ended_at").is_not_null())
    if ended.is_empty():
        return Chain((), (), None)
    last = ended.sort("ended_at", "task_id").row(-1, named=True)["task_id"]
    ends = ended.select(pl.col("task_id").alias("source"), pl.col("ended_at").alias("end"))
    latest = (edges.join(ends, on="source").sort("end", "source")
              .group_by("target").agg(pl.col("source").last(), pl.col("kind").last()))
    before = {target: (source, kind) for target, source, kind in latest.iter_rows()}
    path, via = _walk_back(last, before)
    times = tasks.filter(pl.col("task_id").is_in([path[0], path[-1]])).select(
        "task_id", "created_at", "ended_at")
    by_id = {row[0]: row for row in times.iter_rows()}
    length = by_id[path[-1]][2] - by_id[path[0]][1]
    return Chain(path, via, length.total_seconds())


def makespan_lower_bound(tasks: pl.DataFrame, edges: pl.DataFrame) -> Chain:
    """The longest chain of work (processing_to_end) through the graph: the makespan with
    infinitely many workers. Tasks are taken in order of end, which puts every task after
    the tasks it waited for."""
    if tasks.get_column("ended_at").null_count() == tasks.height:  # none ended: unknown yet
        return Chain((), (), None)
    work = dict(tasks.select("task_id", pl.col(WORK).fill_null(0.0)).iter_rows())
    alone = max(work, key=lambda task: (work[task], task))
    if edges.is_empty():
        return Chain((alone,), ("",), work[alone])
    before: dict[str, list[tuple[str, str]]] = {}
    for source, target, kind in edges.iter_rows():
        before.setdefault(target, []).append((source, kind))
    involved = set(before) | {source for pairs in before.values() for source, _ in pairs}
    order = (tasks.filter(pl.col("task_id").is_in(list(involved)))
             .sort("ended_at", "created_at", "task_id", nulls_last=True)["task_id"].to_list())
    finish: dict[str, float] = {}
    back: dict[str, tuple[str, str]] = {}
    for task in order:
        best = max(before.get(task, ()), default=None,
                   key=lambda pair: (finish.get(pair[0], work[pair[0]]), pair[0]))
        finish[task] = work[task] + (finish.get(best[0], work[best[0]]) if best else 0.0)
        if best:
            back[task] = best
    end = max(finish, key=lambda task: (finish[task], task))
    if work[alone] > finish[end]:
        return Chain((alone,), ("",), work[alone])
    path, via = _walk_back(end, back)
    return Chain(path, via, finish[end])


def _walk_back(last: str, before: dict[str, tuple[str, str]]) -> tuple[tuple[str, ...],
                                                                         tuple[str, ...]]:
    """The chain ending at `last`, following `before` (task -> (predecessor, edge kind)), in
    order, with the kind of the edge into each task ("" for the first)."""
    path, kinds = [last], []
    seen = {last}
    while (found := before.get(path[-1])) is not None and found[0] not in seen:
        kinds.append(found[1])
        path.append(found[0])
        seen.add(found[0])
    return tuple(reversed(path)), ("", *reversed(kinds))
