"""Counters and histograms over authoritative task facts, fed a page at a time.

ListTasks brings facts a thousand at a time. Observing each through prometheus_client's
Histogram would cost a label look-up and a lock per value; here a page is folded into plain
per-series arrays and families are built fresh at scrape time, as any custom Collector does.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from armonik_observe.exporters.exposition import Family, to_metric
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

    def family(self, name: str, documentation: str) -> Family:
        """The histogram family for a scrape."""
        edges = (*(f"{b:g}" for b in self.bounds), "+Inf")
        rows = [(labels, values[:-1], values[-1]) for labels, values in self.series.items()]
        return Family(name, "histogram", documentation, FACT_LABELS, histogram_rows=rows,
                      bucket_edges=edges)


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

    def families(self) -> Iterator[Family]:
        """The families, built fresh for this scrape."""
        counter = spec("armonik_tasks_ended")
        rows = [(labels, float(count)) for labels, count in self.ended.items()]
        yield Family(counter.name, "counter", counter.help, FACT_LABELS, rows=rows)
        for name, histogram in self.histograms.items():
            yield histogram.family(name, spec(name).help)

    def collect(self) -> Iterator[Metric]:
        """The families as prometheus_client metrics."""
        return map(to_metric, self.families())
