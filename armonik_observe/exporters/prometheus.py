"""The Prometheus sink: the exporter's own registry, fed by record batches.

- Polled state goes through `StateMetrics`, a custom Collector built fresh each scrape.
- Task facts go through `FactMetrics`, folded a page at a time.
- Events update a Counter; RPC timings a Histogram; both on the exporter's registry.
- The exporter's own state comes from a `SelfStatus` snapshot taken at scrape time.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from armonik_observe.exporters.fact_metrics import FactMetrics
from armonik_observe.exporters.metrics_table import RPC_BUCKETS, spec
from armonik_observe.exporters.observed import ObservedState
from armonik_observe.exporters.state_metrics import StateMetrics, gauge
from armonik_observe.model import EventKind
from armonik_observe.pipeline import Batch


@dataclass(frozen=True)
class SelfStatus:
    """The exporter's own state at one instant."""

    events_received: Mapping[str, int] = field(default_factory=dict)
    stream_states: Mapping[str, int] = field(default_factory=dict)
    reconnects: int = 0
    last_event_at: float | None = None
    tasks_tracked: int = 0
    followed: int = 0
    unfollowed: int = 0
    dropped: Mapping[str, int] = field(default_factory=dict)
    stuck: Mapping[tuple[str, str], int] = field(default_factory=dict)
    lag_seconds: Mapping[str, float] = field(default_factory=dict)


def _counter(name: str, labels: tuple[str, ...] = ()) -> CounterMetricFamily:
    metric = spec(name)
    return CounterMetricFamily(metric.name, metric.help, labels=labels or metric.labels)


class SelfMetrics(Collector):
    """armonik_observe_* families and the stuck-task gauge, from a SelfStatus snapshot."""

    def __init__(self, status: Callable[[], SelfStatus], version: str) -> None:
        self._status = status
        self._version = version

    def collect(self) -> Iterator[Metric]:
        """Build the exporter's own families for this scrape."""
        status = self._status()
        build = InfoMetricFamily("armonik_observe_build", spec("armonik_observe_build_info").help,
                                 labels=["version"])
        build.add_metric([self._version], {})
        yield build
        yield _labelled(_counter("armonik_observe_events_received"), status.events_received)
        yield _labelled(gauge("armonik_observe_event_streams"), status.stream_states)
        yield _labelled(_counter("armonik_observe_dropped"), status.dropped)
        yield _single(_counter("armonik_observe_stream_reconnects"), status.reconnects)
        yield _single(gauge("armonik_observe_tasks_tracked"), status.tasks_tracked)
        yield _single(gauge("armonik_observe_followed_sessions"), status.followed)
        yield _single(gauge("armonik_observe_unfollowed_sessions"), status.unfollowed)
        if status.last_event_at is not None:
            yield _single(gauge("armonik_observe_last_event_timestamp_seconds"),
                          status.last_event_at)
        yield _labelled(gauge("armonik_observe_event_lag_seconds"), status.lag_seconds)
        stuck = gauge("armonik_tasks_stuck")
        for (partition, task_status), count in sorted(status.stuck.items()):
            stuck.add_metric([partition, task_status], float(count))
        yield stuck


def _labelled(family: GaugeMetricFamily | CounterMetricFamily,
              values: Mapping[str, float]) -> Metric:
    for label, value in sorted(values.items()):
        family.add_metric([label], float(value))
    return family


def _single(family: GaugeMetricFamily | CounterMetricFamily, value: float) -> Metric:
    family.add_metric([], float(value))
    return family


class PrometheusSink:
    """Keeps every metric of the exporter on its own CollectorRegistry."""

    name = "prometheus"

    def __init__(
        self,
        *,
        registry: CollectorRegistry,
        up: Callable[[], bool],
        self_status: Callable[[], SelfStatus],
        version: str,
        core_compat: bool = True,
        state: ObservedState | None = None,
    ) -> None:
        self.registry = registry
        self.state = state or ObservedState()
        self.facts = FactMetrics()
        registry.register(StateMetrics(self.state, up=up, core_compat=core_compat))
        registry.register(self.facts)
        registry.register(SelfMetrics(self_status, version))
        transitions = spec("armonik_task_status_transitions")
        self.transitions = Counter(transitions.name, transitions.help, transitions.labels,
                                   registry=registry)
        rpc = spec("armonik_observe_rpc_duration_seconds")
        self.rpc_duration = Histogram(rpc.name, rpc.help, rpc.labels, buckets=RPC_BUCKETS,
                                      registry=registry)

    async def start(self) -> None:
        """Nothing to prepare: the registry is live from construction."""

    def consume(self, batch: Batch) -> None:
        """Fold a batch into the metrics."""
        self.state.update(batch)
        if batch.facts:
            self.facts.add(batch.facts)
        if batch.events:
            self._count_transitions(batch)

    def _count_transitions(self, batch: Batch) -> None:
        partition_of = self.state.partition_of
        tally: Tally[tuple[str, str]] = Tally(
            (partition_of(event.session_id), event.status)
            for event in batch.events
            if event.kind in (EventKind.NEW_TASK, EventKind.TASK_STATUS_UPDATE)
        )
        for (partition, status), count in tally.items():
            self.transitions.labels(partition, status).inc(count)

    def observe_rpc(self, rpc: str, code: str, seconds: float) -> None:
        """Record one call to the control plane (the Connection's observer)."""
        self.rpc_duration.labels(rpc, code).observe(seconds)

    async def flush(self) -> None:
        """Metrics are visible as soon as they are consumed."""

    async def stop(self) -> None:
        """Nothing to release."""
