"""The analysis of one session: its tasks read once, each answer computed when first asked for.

`summary()` is what the command prints (and the JSON and CSV formats hold); the HTML report asks
for every answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import polars as pl

from armonik_observe.analytics import graph
from armonik_observe.analytics import stragglers as drag  # the module; `stragglers` is an answer
from armonik_observe.analytics.curves import curves as curves_of
from armonik_observe.analytics.durations import duration_stats
from armonik_observe.analytics.frames import TaskFrames
from armonik_observe.analytics.pods import MAX_BARS, Gantt, pod_usage
from armonik_observe.analytics.pods import gantt as gantt_of
from armonik_observe.analytics.summary import session_summary


@dataclass(frozen=True)
class Options:
    """How stragglers are found and curves sampled."""

    straggler_factor: float = drag.DEFAULT_FACTOR
    straggler_measure: str = drag.DEFAULT_MEASURE
    curve_interval: float | None = None  # seconds; None: about 200 points over the session
    max_gantt_bars: int = MAX_BARS


class SessionAnalysis:
    """Every answer about one session, from its tasks (a frame with the archive's schema)."""

    def __init__(self, session_id: str, tasks: pl.DataFrame,
                 results: pl.LazyFrame | None = None, options: Options | None = None) -> None:
        self.session_id = session_id
        # Sorted, so that sums (means, work) add up in the same order whatever the source.
        self.tasks = tasks.sort("task_id")
        self.results = results
        self.options = options or Options()

    @property
    def lazy(self) -> pl.LazyFrame:
        """The session's tasks as a LazyFrame (what the analytics functions take)."""
        return self.tasks.lazy()

    @property
    def ended(self) -> int:
        """How many tasks ended."""
        return int(self.tasks["ended_at"].is_not_null().sum())

    @cached_property
    def by_status(self) -> dict[str, int]:
        """Tasks per status, by status name."""
        counts = self.tasks.group_by("status").len().sort("status")
        return dict(counts.iter_rows())

    @cached_property
    def durations(self) -> pl.DataFrame:
        """duration_stats over the whole session."""
        return duration_stats(self.lazy).collect()

    @cached_property
    def durations_by_partition(self) -> pl.DataFrame:
        """duration_stats per partition."""
        return duration_stats(self.lazy, ("partition_id",)).collect()

    @cached_property
    def edges(self) -> pl.DataFrame:
        """The task graph's edges (graph.task_edges)."""
        return graph.task_edges(self.lazy, self.results).collect()

    @cached_property
    def makespan(self) -> float | None:
        """Last end - first creation, seconds."""
        return graph.makespan_seconds(self.lazy)

    @cached_property
    def critical_path(self) -> graph.Chain:
        """The chain the session's end waited on."""
        return graph.critical_path(self.tasks, self.edges)

    @cached_property
    def lower_bound(self) -> graph.Chain:
        """The longest chain of work: the makespan with infinitely many workers."""
        return graph.makespan_lower_bound(self.tasks, self.edges)

    @cached_property
    def parallelism(self) -> float | None:
        """Total work over the makespan."""
        return graph.parallelism_ratio(self.lazy, self.makespan)

    @cached_property
    def curves(self) -> pl.DataFrame:
        """Throughput, backlog and concurrency per partition over time."""
        return curves_of(self.lazy, self.options.curve_interval)

    @cached_property
    def pods(self) -> pl.DataFrame:
        """Utilization and idle share per pod."""
        return pod_usage(self.lazy, self.makespan)

    @cached_property
    def gantt(self) -> Gantt:
        """The Gantt chart's bars."""
        return gantt_of(self.lazy, self.options.max_gantt_bars)

    @cached_property
    def stragglers(self) -> pl.DataFrame:
        """Tasks slower than the factor x their partition's median."""
        return drag.stragglers(self.lazy, self.options.straggler_factor,
                               self.options.straggler_measure)

    @cached_property
    def skew(self) -> pl.DataFrame:
        """Max / median per partition."""
        return drag.skew(self.lazy, self.options.straggler_measure)

    @cached_property
    def retries(self) -> pl.DataFrame:
        """Chains of retried attempts."""
        return drag.retry_chains(self.lazy)

    @cached_property
    def errors(self) -> pl.DataFrame:
        """Attempts that ended without completing, by status and message."""
        return drag.errors(self.lazy)

    def summary(self) -> dict[str, Any]:
        """The session as the JSON format holds it (docs/analytics.md)."""
        return session_summary(self)


def analyses(frames: TaskFrames, options: Options | None = None) -> list[SessionAnalysis]:
    """One analysis per session of the frames, in their order."""
    return [SessionAnalysis(session, frames.session(session), frames.results, options)
            for session in frames.sessions]
