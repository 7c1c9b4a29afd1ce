"""The queries dashboards and rules share: written once, used at either scope.

A dashboard panel asks `throughput(DASHBOARD, "$__rate_interval", "status")`; the recording rule
of the same rate is `throughput(RULES, "5m", "partition", "status")`. Status sets follow the
task life cycle of docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from armonik_observe.dashboards.promql import Scope
from armonik_observe.model import IN_FLIGHT_TASK_STATUSES, TERMINAL_TASK_STATUSES, TaskStatus

Matchers = Sequence[str]

ENDED = "armonik_tasks_ended_total"
BUSY = "armonik_partition_busy_seconds_total"
TERMINAL = tuple(s.name for s in TaskStatus if s in TERMINAL_TASK_STATUSES)
IN_FLIGHT = tuple(s.name for s in IN_FLIGHT_TASK_STATUSES)
# Attempts that failed: for good (ERROR, TIMEOUT) or followed by a retry (RETRIED).
FAILED = ("ERROR", "TIMEOUT", "RETRIED")
# The backlog: tasks queued for a worker. The official exporter's `queued`, which KEDA scales
# on, also counts the tasks being processed.
WAITING = ("SUBMITTED", "DISPATCHED")
QUEUED = (*WAITING, "PROCESSING")
QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class Histogram:
    """A duration histogram of the task facts and what it measures."""

    metric: str
    title: str

    @property
    def short(self) -> str:
        """The metric without its prefix and unit, e.g. queue_wait."""
        return self.metric.removeprefix("armonik_task_").removesuffix("_seconds")


DURATIONS = (
    Histogram("armonik_task_queue_wait_seconds", "Queue wait (submitted to received)"),
    Histogram("armonik_task_processing_to_end_seconds", "Processing to end"),
    Histogram("armonik_task_received_to_end_seconds", "Received to end"),
    Histogram("armonik_task_creation_to_end_seconds", "Creation to end"),
)


def one_of(label: str, values: Sequence[str]) -> str:
    """A regex matcher for any of the values."""
    return f'{label}=~"{"|".join(values)}"'


def none_of(label: str, values: Sequence[str]) -> str:
    """A regex matcher for none of the values."""
    return f'{label}!~"{"|".join(values)}"'


def throughput(scope: Scope, window: str, *labels: str, matchers: Matchers = ()) -> str:
    """Tasks ending per second."""
    return scope.sum(scope.rate(ENDED, window, *matchers), *labels)


def failure_ratio(scope: Scope, window: str, *labels: str, matchers: Matchers = ()) -> str:
    """The share of ended attempts that failed; 0, not nothing, when none failed."""
    failed = scope.sum(scope.rate(ENDED, window, *matchers, one_of("status", FAILED)), *labels)
    ended = throughput(scope, window, *labels, matchers=matchers)
    return f"({failed} or {ended} * 0) / {ended}"


def quantile(scope: Scope, histogram: Histogram, q: float, window: str, *labels: str,
             matchers: Matchers = ()) -> str:
    """A quantile of a duration histogram over the window."""
    buckets = scope.sum(scope.rate(f"{histogram.metric}_bucket", window, *matchers),
                        *labels, "le")
    return f"histogram_quantile({q}, {buckets})"


def bucket_rates(scope: Scope, histogram: Histogram, window: str,
                 matchers: Matchers = ()) -> str:
    """Observations per second in each bucket: what a heatmap draws."""
    return scope.sum(scope.rate(f"{histogram.metric}_bucket", window, *matchers), "le")


def busy_workers(scope: Scope, window: str, *labels: str, matchers: Matchers = ()) -> str:
    """Mean number of busy workers over the window (long tasks land as steps)."""
    return scope.sum(scope.rate(BUSY, window, *matchers), *labels)


def tasks(scope: Scope, statuses: Sequence[str], *labels: str, matchers: Matchers = ()) -> str:
    """Tasks in any of the statuses (CountTasksByStatus)."""
    return scope.sum(scope.sel("armonik_tasks", *matchers, one_of("status", statuses)), *labels)


def gauge_sum(scope: Scope, metric: str, *labels: str, matchers: Matchers = ()) -> str:
    """A gauge summed by the labels."""
    return scope.sum(scope.sel(metric, *matchers), *labels)


def session_remaining(scope: Scope, *labels: str, matchers: Matchers = ()) -> str:
    """Tasks of each followed session not yet ended."""
    selector = scope.sel("armonik_session_tasks", *matchers, none_of("status", TERMINAL))
    return scope.sum(selector, "session", *labels)


def session_progress(scope: Scope, matchers: Matchers = ()) -> str:
    """Ended over all tasks of each followed session; retried attempts count in neither."""
    ended = scope.sel("armonik_session_tasks", *matchers,
                      one_of("status", [s for s in TERMINAL if s != "RETRIED"]))
    every = scope.sel("armonik_session_tasks", *matchers, 'status!="RETRIED"')
    return f"{scope.sum(ended, 'session')} / {scope.sum(every, 'session')}"
