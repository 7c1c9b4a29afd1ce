"""Polled state as metric families built fresh each scrape: stale series vanish by themselves."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from armonik_observe.exporters.metrics_table import spec
from armonik_observe.exporters.observed import ObservedState
from armonik_observe.model import HealthStatus, TaskStatus

TASK_STATUSES = [s.name for s in TaskStatus if s != TaskStatus.UNSPECIFIED]
SESSION_STATUSES = ["RUNNING", "CANCELLED", "PAUSED", "CLOSED", "PURGED", "DELETED"]
HEALTH_STATES = [s.name for s in HealthStatus]
# The official exporter always emits these four, 0 when empty; queued is the sum of the rest.
COMPAT_STATUSES = ("submitted", "dispatched", "processing")
_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_:]")


def gauge(name: str, labels: tuple[str, ...] | None = None) -> GaugeMetricFamily:
    """An empty gauge family named and documented from the metric table."""
    metric = spec(name)
    return GaugeMetricFamily(metric.name, metric.help, labels=labels or metric.labels)


def compat_partition(partition: str) -> str:
    """A partition name as the official exporter writes it in a metric name."""
    return _INVALID_NAME_CHARS.sub("_", partition)


class StateMetrics(Collector):
    """armonik_up, health, versions, task and session counts, partitions, per-session series."""

    def __init__(
        self, state: ObservedState, *, up: Callable[[], bool], core_compat: bool = True
    ) -> None:
        self._state = state
        self._up = up
        self._core_compat = core_compat

    def collect(self) -> Iterator[Metric]:
        """Build every polled family for this scrape."""
        up = gauge("armonik_up")
        up.add_metric([], 1.0 if self._up() else 0.0)
        yield up
        yield from self._health()
        yield from self._versions()
        yield self._tasks()
        yield self._sessions()
        yield from self._partitions()
        yield from self._per_session()
        if self._core_compat:
            yield from self._compat()

    def _health(self) -> Iterator[Metric]:
        family = gauge("armonik_service_health")
        for service, sample in sorted(self._state.health.items()):
            for state in HEALTH_STATES:
                family.add_metric([service, state], 1.0 if sample.status == state else 0.0)
        yield family

    def _versions(self) -> Iterator[Metric]:
        versions = self._state.versions
        if versions is None:
            return
        for name, value in (("armonik_api", versions.api), ("armonik_core", versions.core)):
            family = InfoMetricFamily(name, spec(f"{name}_info").help, labels=["version"])
            family.add_metric([value], {})
            yield family

    def _tasks(self) -> Metric:
        family = gauge("armonik_tasks")
        for partition, counts in sorted(self._state.partition_counts.items()):
            extra = sorted(set(counts) - set(TASK_STATUSES))  # unknown statuses: UNKNOWN_<n>
            for status in TASK_STATUSES + extra:
                family.add_metric([partition, status], float(counts.get(status, 0)))
        return family

    def _sessions(self) -> Metric:
        family = gauge("armonik_sessions")
        counts: dict[str, int] = dict.fromkeys(SESSION_STATUSES, 0)
        for session in self._state.sessions.values():
            counts[session.status] = counts.get(session.status, 0) + 1
        for status, count in counts.items():
            family.add_metric([status], float(count))
        return family

    def _partitions(self) -> Iterator[Metric]:
        families = {
            "armonik_partition_pod_max": "pod_max",
            "armonik_partition_pod_reserved": "pod_reserved",
            "armonik_partition_priority": "priority",
        }
        for name, attribute in families.items():
            family = gauge(name)
            for partition in self._state.partitions.values():
                family.add_metric([partition.partition_id], float(getattr(partition, attribute)))
            yield family

    def _per_session(self) -> Iterator[Metric]:
        tasks = gauge("armonik_session_tasks")
        eta = gauge("armonik_session_completion_eta_seconds")
        for session_id, counts in sorted(self._state.session_counts.items()):
            for status in TASK_STATUSES:
                tasks.add_metric([session_id, status], float(counts.get(status, 0)))
            progress = self._state.progress.get(session_id)
            eta.add_metric([session_id], progress.eta_seconds() if progress else float("nan"))
        yield tasks
        yield eta

    def _compat(self) -> Iterator[Metric]:
        totals = dict.fromkeys(COMPAT_STATUSES, 0)
        for partition, counts in sorted(self._state.partition_counts.items()):
            if partition not in self._state.partitions:
                continue  # the official exporter counts registered partitions only
            values = {s: counts.get(s.upper(), 0) for s in COMPAT_STATUSES}
            for status, value in values.items():
                totals[status] += value
            yield from _compat_families(f"armonik_{compat_partition(partition)}_tasks", values)
        yield from _compat_families("armonik_tasks", totals)


def _compat_families(prefix: str, values: dict[str, int]) -> Iterator[Metric]:
    queued = sum(values.values())
    for status, value in (("queued", queued), *values.items()):
        name = f"{prefix}_{status}"
        yield GaugeMetricFamily(name, f"{name} (official ArmoniK metrics exporter name)",
                                value=float(value))
