"""Counters and histograms over authoritative task facts, fed a page at a time.

ListTasks brings facts a thousand at a time. Observing each through prometheus_client's
Histogram would cost a label look-up and a lock per value; here a page is folded into plain
per-series arrays and families are built fresh at scrape time, as any custom Collector does.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from armonik_observe.exporters.metrics_table import DURATION_BUCKETS, FACT_LABELS, spec
from armonik_observe.model import TaskFact

Labels = tuple[str, str, str]

_DURATIONS = (
    ("armonik_task_creation_to_end_seconds", "creation_to_end"),
    ("armonik_task_processing_to_end_seconds", "processing_to_end"),
    ("armonik_task_received_to_end_seconds", "received_to_end"),
    ("armonik_task_queue_wait_seconds", "queue_wait"),
)


class HistogramSeries:
    """Cumulative buckets of one histogram, one array per label set."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = list(bounds)
        self.series: dict[Labels, list[float]] = {}  # counts per bucket (+Inf last), then sum

    def observe(self, labels: Labels, seconds: float) -> None:
        """Add one observation."""
        values = self.series.get(labels)
        if values is None:
            values = self.series[labels] = [0.0] * (len(self.bounds) + 2)
        values[bisect_left(self.bounds, seconds)] += 1
        values[-1] += seconds

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        """Build the histogram family for a scrape."""
        family = HistogramMetricFamily(name, documentation, labels=FACT_LABELS)
        edges = [*(f"{b:g}" for b in self.bounds), "+Inf"]
        for labels, values in self.series.items():
            running, buckets = 0.0, []
            for edge, count in zip(edges, values[:-1], strict=True):
                running += count
                buckets.append((edge, running))
            family.add_metric(list(labels), buckets, values[-1])
        return family


class FactMetrics(Collector):
    """tasks_ended_total and the four duration histograms, by partition, application, status."""

    def __init__(self, buckets: Sequence[float] = DURATION_BUCKETS) -> None:
        self.ended: dict[Labels, int] = {}
        self.histograms = {name: HistogramSeries(buckets) for name, _ in _DURATIONS}

    def add(self, facts: Iterable[TaskFact]) -> None:
        """Count each fact once and observe its durations."""
        ended = self.ended
        observers = [(self.histograms[name], attribute) for name, attribute in _DURATIONS]
        for fact in facts:
            labels = (fact.partition_id, fact.application_name, fact.status)
            ended[labels] = ended.get(labels, 0) + 1
            for histogram, attribute in observers:
                micros = getattr(fact, attribute)
                if micros is not None:
                    histogram.observe(labels, micros / 1_000_000)

    def collect(self) -> Iterator[Metric]:
        """Build the families fresh for this scrape."""
        counter_spec = spec("armonik_tasks_ended")
        counter = CounterMetricFamily(counter_spec.name, counter_spec.help, labels=FACT_LABELS)
        for labels, count in self.ended.items():
            counter.add_metric(list(labels), count)
        yield counter
        for name, histogram in self.histograms.items():
            yield histogram.family(name, spec(name).help)
