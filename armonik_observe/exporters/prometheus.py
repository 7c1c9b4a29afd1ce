"""The Prometheus sink: the exporter's own registry, fed by record batches.

- Polled state goes through `StateMetrics`, a custom Collector built fresh each scrape.
- Task facts go through `FactMetrics`, folded a page at a time.
- Events update a Counter; RPC timings a Histogram; both on the exporter's registry.
- The exporter's own state comes from a `SelfStatus` snapshot taken at scrape time.
"""

from __future__ import annotations

import gc
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

from armonik_observe.exporters.exposition import Family, Renderer, to_metric, without_created
from armonik_observe.exporters.fact_metrics import FactMetrics
from armonik_observe.exporters.metrics_table import RPC_BUCKETS, spec
from armonik_observe.exporters.observed import ObservedState
from armonik_observe.exporters.state_metrics import StateMetrics, family
from armonik_observe.exporters.throughput import RecentEnds
from armonik_observe.model import EventKind
from armonik_observe.pipeline import Batch, Needs


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
    collector_errors: Mapping[str, int] = field(default_factory=dict)
    asyncio_tasks: int = 0
    caches: Mapping[str, int] = field(default_factory=dict)


class SelfMetrics(Collector):
    """armonik_observe_* families and the stuck-task gauge, from a SelfStatus snapshot."""

    def __init__(self, status: Callable[[], SelfStatus], version: str) -> None:
        self._status = status
        self._version = version

    def collect(self) -> Iterator[Metric]:
        """The families as prometheus_client metrics."""
        return map(to_metric, self.families())

    def families(self) -> Iterator[Family]:
        """The exporter's own families for this scrape."""
        status = self._status()
        yield family("armonik_observe_build_info", [((self._version,), 1.0)])
        yield family("armonik_observe_events_received", _by_label(status.events_received))
        yield family("armonik_observe_event_streams", _by_label(status.stream_states))
        yield family("armonik_observe_dropped", _by_label(status.dropped))
        yield family("armonik_observe_stream_reconnects", [((), float(status.reconnects))])
        yield family("armonik_observe_tasks_tracked", [((), float(status.tasks_tracked))])
        yield family("armonik_observe_followed_sessions", [((), float(status.followed))])
        yield family("armonik_observe_unfollowed_sessions", [((), float(status.unfollowed))])
        if status.last_event_at is not None:
            yield family("armonik_observe_last_event_timestamp_seconds",
                         [((), status.last_event_at)])
        yield family("armonik_observe_event_lag_seconds", _by_label(status.lag_seconds))
        stuck = [(labels, float(count)) for labels, count in sorted(status.stuck.items())]
        yield family("armonik_tasks_stuck", stuck)
        yield family("armonik_observe_collector_errors", _by_label(status.collector_errors))
        yield family("armonik_observe_asyncio_tasks", [((), float(status.asyncio_tasks))])
        yield family("armonik_observe_cache_entries", _by_label(status.caches))


class FamilySource(Collector):
    """Families computed at scrape time by a function (the sinks' own self-metrics)."""

    def __init__(self, families: Callable[[], Iterable[Family]]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        """The families as prometheus_client metrics."""
        return map(to_metric, self.families())

    def families(self) -> Iterable[Family]:
        """The families for this scrape."""
        return self._families()


def _by_label(values: Mapping[str, float]) -> list[tuple[tuple[str], float]]:
    return [((label,), float(value)) for label, value in sorted(values.items())]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Automatic garbage collection off for the block, if it was on."""
    if not gc.isenabled():
        yield  # someone else manages the collector: leave it as it is
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class PrometheusSink:
    """Keeps every metric of the exporter on its own CollectorRegistry."""

    name = "prometheus"
    needs = Needs()

    def __init__(
        self,
        *,
        registry: CollectorRegistry,
        up: Callable[[], bool],
        self_status: Callable[[], SelfStatus],
        version: str,
        core_compat: bool = True,
        deadline_option: str = "deadline",
        state: ObservedState | None = None,
    ) -> None:
        self.registry = registry
        self.state = state or ObservedState(deadline_option=deadline_option)
        self.facts = FactMetrics(partitions=lambda: self.state.partitions)
        self.recent_ends = RecentEnds()  # the status page's throughput
        self._collectors: list[StateMetrics | FactMetrics | SelfMetrics | FamilySource] = [
            StateMetrics(self.state, up=up, core_compat=core_compat),
            self.facts,
            SelfMetrics(self_status, version),
        ]
        for collector in self._collectors:
            registry.register(collector)
        # prometheus_client's own metrics live in a small registry of their own too, so that
        # /metrics can render them with the library and everything else with the fast path.
        self._library = CollectorRegistry()
        transitions = spec("armonik_task_status_transitions")
        self.transitions = Counter(transitions.name, transitions.help, transitions.labels,
                                   registry=self._library)
        rpc = spec("armonik_observe_rpc_duration_seconds")
        self.rpc_duration = Histogram(rpc.name, rpc.help, rpc.labels, buckets=RPC_BUCKETS,
                                      registry=self._library)
        registry.register(self.transitions)
        registry.register(self.rpc_duration)
        self._renderer = Renderer()

    def caches(self) -> dict[str, int]:
        """Entries of the sink's bounded caches (line heads, sessions and their ETA samples)."""
        return {"render_heads": self._renderer.cached, "sessions_known": len(self.state.sessions),
                "session_progress": len(self.state.progress)}

    def add_families(self, families: Callable[[], Iterable[Family]]) -> None:
        """Expose more families, computed at each scrape (e.g. another sink's self-metrics)."""
        source = FamilySource(families)
        self.registry.register(source)
        self._collectors.append(source)

    async def start(self) -> None:
        """Nothing to prepare: the registry is live from construction."""

    def consume(self, batch: Batch) -> None:
        """Fold a batch into the metrics."""
        self.state.update(batch)
        if batch.facts:
            self.facts.add(batch.facts)
            self.recent_ends.add(batch.facts)
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

    def offer_exemplars(self, spans: Sequence[Any]) -> None:
        """Exemplars for the duration histograms, from task spans sampled and exported (called
        from the trace exporter's thread)."""
        self.facts.offer_exemplars(spans)

    def observe_rpc(self, rpc: str, code: str, seconds: float) -> None:
        """Record one call to the control plane (the Connection's observer)."""
        self.rpc_duration.labels(rpc, code).observe(seconds)

    def render(self, openmetrics: bool) -> bytes:
        """The whole exposition, in the text format or in OpenMetrics."""
        # A scrape builds some 10k row tuples that all die once the text is written. Counted
        # towards the collector's thresholds they start collections mid-render that cannot free
        # any of them (no cycles: refcounting frees them right after) but scan the young
        # generation (up to 100k objects under runner.tune_process: 10-20 ms) or, at default
        # thresholds, promote them until a full pass over the heap comes due inside a render
        # (40-50 ms at 10k series: the renders' p99, measured). Pausing defers, never skips:
        # a collection that is due runs at the next allocation after the render.
        with _gc_paused():
            families = (f for collector in self._collectors for f in collector.families())
            parts = list(self._renderer.render(families, openmetrics))
            if openmetrics:
                parts.append(generate_openmetrics(self._library).decode())  # ends with "# EOF"
            else:
                parts.append(without_created(generate_latest(self._library).decode()))
            return "".join(parts).encode()

    async def flush(self) -> None:
        """Metrics are visible as soon as they are consumed."""

    async def stop(self) -> None:
        """Nothing to release."""

    def self_metrics(self) -> Iterable[Family]:
        """None of its own: the exporter's self-metrics come from SelfStatus."""
        return ()
