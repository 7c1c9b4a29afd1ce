"""Polled state as metric families built fresh each scrape: stale series vanish by themselves."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from armonik_observe.exporters.exposition import Family, LabelValues, to_metric
from armonik_observe.exporters.metrics_table import spec
from armonik_observe.exporters.observed import ObservedState
from armonik_observe.model import HealthStatus, TaskStatus

TASK_STATUSES = [s.name for s in TaskStatus if s != TaskStatus.UNSPECIFIED]
SESSION_STATUSES = ["RUNNING", "CANCELLED", "PAUSED", "CLOSED", "PURGED", "DELETED"]
HEALTH_STATES = [s.name for s in HealthStatus]
# The official exporter always emits these four, 0 when empty; queued is the sum of the rest.
COMPAT_STATUSES = ("submitted", "dispatched", "processing")
_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_:]")

Rows = Sequence[tuple[LabelValues, float]]


def family(name: str, rows: Rows, kind: str | None = None) -> Family:
    """A family named, typed and documented from the metric table."""
    metric = spec(name)
    return Family(metric.name, kind or metric.kind, metric.help, metric.labels, rows=rows)


def compat_partition(partition: str) -> str:
    """A partition name as the official exporter writes it in a metric name."""
    return _INVALID_NAME_CHARS.sub("_", partition)


def _with_unknown(counts: dict[str, int]) -> list[str]:
    """Every known status, then any UNKNOWN_<n> the server reported."""
    return TASK_STATUSES + sorted(set(counts) - set(TASK_STATUSES))


class StateMetrics(Collector):
    """armonik_up, health, versions, task and session counts, partitions, per-session series."""

    def __init__(
        self, state: ObservedState, *, up: Callable[[], bool], core_compat: bool = True
    ) -> None:
        self._state = state
        self._up = up
        self._core_compat = core_compat

    def collect(self) -> Iterator[Metric]:
        """The families as prometheus_client metrics."""
        return map(to_metric, self.families())

    def families(self) -> Iterator[Family]:
        """Every polled family, built for this scrape."""
        yield family("armonik_up", [((), 1.0 if self._up() else 0.0)])
        yield self._health()
        yield from self._versions()
        yield self._tasks()
        yield self._sessions()
        yield from self._partitions()
        yield from self._per_session()
        if self._core_compat:
            yield from self._compat()

    def _health(self) -> Family:
        rows = [
            ((service, state), 1.0 if sample.status == state else 0.0)
            for service, sample in sorted(self._state.health.items())
            for state in HEALTH_STATES
        ]
        return family("armonik_service_health", rows)

    def _versions(self) -> Iterator[Family]:
        versions = self._state.versions
        if versions is not None:
            yield family("armonik_api_info", [((versions.api,), 1.0)])
            yield family("armonik_core_info", [((versions.core,), 1.0)])

    def _tasks(self) -> Family:
        rows = [
            ((partition, status), float(counts.get(status, 0)))
            for partition, counts in sorted(self._state.partition_counts.items())
            for status in _with_unknown(counts)
        ]
        return family("armonik_tasks", rows)

    def _sessions(self) -> Family:
        counts: dict[str, int] = dict.fromkeys(SESSION_STATUSES, 0)
        counts.update(self._state.session_totals)
        return family("armonik_sessions", [((s,), float(n)) for s, n in counts.items()])

    def _partitions(self) -> Iterator[Family]:
        attributes = {
            "armonik_partition_pod_max": "pod_max",
            "armonik_partition_pod_reserved": "pod_reserved",
            "armonik_partition_priority": "priority",
        }
        partitions = self._state.partitions.values()
        for name, attribute in attributes.items():
            rows = [((p.partition_id,), float(getattr(p, attribute))) for p in partitions]
            yield family(name, rows)

    def _per_session(self) -> Iterator[Family]:
        sessions = sorted(self._state.session_counts.items())
        tasks = [
            ((session_id, status), float(counts.get(status, 0)))
            for session_id, counts in sessions
            for status in _with_unknown(counts)
        ]
        yield family("armonik_session_tasks", tasks)
        progress = self._state.progress
        eta = [
            ((session_id,), progress[session_id].eta_seconds() if session_id in progress
             else float("nan"))
            for session_id, _ in sessions
        ]
        yield family("armonik_session_completion_eta_seconds", eta)
        deadlines = self._state.deadlines
        yield family("armonik_session_deadline_timestamp_seconds",
                     [((session_id,), deadlines[session_id]) for session_id, _ in sessions
                      if session_id in deadlines])

    def _compat(self) -> Iterator[Family]:
        totals = dict.fromkeys(COMPAT_STATUSES, 0)
        for partition, counts in sorted(self._state.partition_counts.items()):
            if partition not in self._state.partitions:
                continue  # the official exporter counts registered partitions only
            values = {s: counts.get(s.upper(), 0) for s in COMPAT_STATUSES}
            for status, value in values.items():
                totals[status] += value
            yield from _compat_families(f"armonik_{compat_partition(partition)}_tasks", values)
        yield from _compat_families("armonik_tasks", totals)


def _compat_families(prefix: str, values: dict[str, int]) -> Sequence[Family]:
    queued = sum(values.values())
    return [
        Family(f"{prefix}_{status}", "gauge",
               f"{prefix}_{status} (official ArmoniK metrics exporter name)", (),
               rows=[((), float(value))])
        for status, value in (("queued", queued), *values.items())
    ]
