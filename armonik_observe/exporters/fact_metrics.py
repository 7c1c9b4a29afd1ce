"""Counters and histograms over authoritative task facts, fed a page at a time.

ListTasks brings facts a thousand at a time. Observing each through prometheus_client's
Histogram would cost a label look-up and a lock per value; here a page is folded with numpy
(bucket search and counts per label set) into per-series arrays, and families are built fresh
at scrape time, as any custom Collector does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client.core import Exemplar, Metric
from prometheus_client.registry import Collector

from armonik_observe.exporters.exposition import Family, to_metric
from armonik_observe.exporters.metrics_table import DURATION_BUCKETS, FACT_LABELS, spec
from armonik_observe.fact_columns import TaskFacts

Labels = tuple[str, str, str]

_DURATIONS = (
    ("armonik_task_creation_to_end_seconds", "creation_to_end"),
    ("armonik_task_processing_to_end_seconds", "processing_to_end"),
    ("armonik_task_received_to_end_seconds", "received_to_end"),
    ("armonik_task_queue_wait_seconds", "queue_wait"),
)


# Each duration histogram and the task span attribute holding the same server duration.
_EXEMPLAR_ATTRIBUTES = tuple((name, f"armonik.task.{column}_seconds")
                             for name, column in _DURATIONS)


class HistogramSeries:
    """Buckets of one histogram, one array per label set."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = np.array(bounds, np.float64)
        # per label set: counts per bucket, +Inf last (not cumulative); then the sum
        self.series: dict[Labels, tuple[npt.NDArray[np.int64], list[float]]] = {}
        # per label set: bucket index -> the latest exemplar offered for that bucket
        self.exemplars: dict[Labels, dict[int, Exemplar]] = {}

    def add(self, labels: list[Labels], slots: npt.NDArray[np.intp],
            seconds: npt.NDArray[np.float64]) -> None:
        """Observe `seconds[i]` under `labels[slots[i]]`."""
        width = len(self.bounds) + 1
        # bisect_left: a value equal to a bound falls in that bound's bucket (le="bound")
        buckets = np.searchsorted(self.bounds, seconds, side="left")
        counts = np.bincount(slots * width + buckets, minlength=len(labels) * width)
        sums = np.bincount(slots, weights=seconds, minlength=len(labels))
        for slot, label in enumerate(labels):
            row = counts[slot * width:(slot + 1) * width]
            if not row.any():
                continue
            series = self.series.get(label)
            if series is None:
                series = self.series[label] = (np.zeros(width, np.int64), [0.0])
            series[0][:] += row
            series[1][0] += float(sums[slot])

    def offer(self, labels: Labels, seconds: float, exemplar: Exemplar) -> None:
        """Keep `exemplar` as the one of the bucket `seconds` falls in (any thread)."""
        bucket = int(np.searchsorted(self.bounds, seconds, side="left"))
        self.exemplars.setdefault(labels, {})[bucket] = exemplar

    def family(self, name: str, documentation: str) -> Family:
        """The histogram family for a scrape."""
        edges = (*(f"{b:g}" for b in self.bounds.tolist()), "+Inf")
        rows = [(labels, [float(c) for c in counts.tolist()], total[0])
                for labels, (counts, total) in self.series.items()]
        # Offered from the trace exporter's thread: copied as they stand (atomic in C).
        exemplars: dict[Sequence[str], dict[int, Exemplar]] = {
            labels: dict(buckets) for labels, buckets in list(self.exemplars.items())
            if labels in self.series}
        return Family(name, "histogram", documentation, FACT_LABELS, histogram_rows=rows,
                      bucket_edges=edges, exemplars=exemplars)


class FactMetrics(Collector):
    """tasks_ended_total and the four duration histograms, by partition, application, status;
    the busy seconds of each partition."""

    def __init__(self, buckets: Sequence[float] = DURATION_BUCKETS,
                 partitions: Callable[[], Iterable[str]] = tuple) -> None:
        self.ended: dict[Labels, int] = {}
        self.histograms = {name: HistogramSeries(buckets) for name, _ in _DURATIONS}
        self.busy: dict[str, float] = {}
        self._partitions = partitions  # known partitions: their busy seconds start at 0

    def add(self, facts: TaskFacts) -> None:
        """Count each fact once and observe its durations, a page at a time."""
        if not facts:
            return
        slot_of: dict[Labels, int] = {}
        slots = np.fromiter(
            (slot_of.setdefault(key, len(slot_of)) for key in zip(
                facts["partition_id"], facts["application_name"], facts["status"],
                strict=True)),
            np.intp, len(facts))
        labels = list(slot_of)
        ended = self.ended
        for label, count in zip(labels, np.bincount(slots).tolist(), strict=True):
            ended[label] = ended.get(label, 0) + count
        for name, micros, valid in self._durations(facts):
            self.histograms[name].add(labels, slots[valid], micros[valid] / 1_000_000)
        busy = np.bincount(slots, weights=busy_micros(facts), minlength=len(labels))
        for (partition, _, _), micros in zip(labels, busy.tolist(), strict=True):
            self.busy[partition] = self.busy.get(partition, 0.0) + micros / 1_000_000

    @staticmethod
    def _durations(facts: TaskFacts) -> Iterator[tuple[str, npt.NDArray[np.int64],
                                                       npt.NDArray[np.bool_]]]:
        """(histogram, microseconds, which rows have the value) for each histogram."""
        for name, column in _DURATIONS[:3]:
            micros = facts[column]
            yield name, micros, micros != 0
        submitted, received = facts["submitted_at"], facts["received_at"]
        yield _DURATIONS[3][0], received - submitted, (submitted != 0) & (received != 0)

    def families(self) -> Iterator[Family]:
        """The families, built fresh for this scrape."""
        counter = spec("armonik_tasks_ended")
        rows = [(labels, float(count)) for labels, count in self.ended.items()]
        yield Family(counter.name, "counter", counter.help, FACT_LABELS, rows=rows)
        for name, histogram in self.histograms.items():
            yield histogram.family(name, spec(name).help)
        busy = spec("armonik_partition_busy_seconds")
        partitions = sorted(set(self.busy).union(self._partitions()))
        yield Family(busy.name, "counter", busy.help, busy.labels,
                     rows=[((p,), self.busy.get(p, 0.0)) for p in partitions])

    def offer_exemplars(self, spans: Sequence[Any]) -> None:
        """Exemplars from exported task spans: their trace and span ids, by duration and
        labels (the spans carry the server's durations as attributes)."""
        for span in spans:
            if span.name != "task":
                continue
            attributes, context = span.attributes, span.context
            labels = (attributes.get("armonik.partition.id", ""),
                      attributes.get("armonik.application.name", ""),
                      attributes.get("armonik.task.status", ""))
            ids = {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}
            ended = span.end_time / 1e9
            for name, attribute in _EXEMPLAR_ATTRIBUTES:
                seconds = attributes.get(attribute)
                if seconds is not None:
                    self.histograms[name].offer(labels, seconds, Exemplar(ids, seconds, ended))

    def collect(self) -> Iterator[Metric]:
        """The families as prometheus_client metrics."""
        return map(to_metric, self.families())


def busy_micros(facts: TaskFacts) -> npt.NDArray[np.int64]:
    """Worker time of each ended task: processed_at - started_at, else ended_at - started_at
    (the worker never returned: a timeout, a cancel); 0 for a task that never started."""
    started, processed = facts["started_at"], facts["processed_at"]
    until = np.where(processed != 0, processed, facts["ended_at"])
    return np.where(started != 0, np.maximum(until - started, 0), 0)
