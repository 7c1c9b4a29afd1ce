"""Fast exposition of the exporter's own families, in the text format and in OpenMetrics.

prometheus_client renders about 7 us per sample and builds a dict per sample at collect time;
at 10k series a scrape then takes well over 100 ms on the event loop. The exporter's collectors
describe their families as plain rows instead. The same rows become prometheus_client families
for `collect()` (so the registry, tests and tools still see everything), or are written here
straight to text, with each series' line head (name and labels) cached across scrapes and the
values formatted afresh. The few metrics kept on prometheus_client's own classes are written
by the library's encoders.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, chain, repeat
from typing import cast

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

LabelValues = Sequence[str]


@dataclass(slots=True)
class Family:
    """One metric family as rows: (label values, value), or for a histogram (label values,
    per-bucket counts with +Inf last, sum)."""

    name: str
    kind: str  # gauge, counter, info, histogram
    help: str
    labelnames: tuple[str, ...]
    rows: Sequence[tuple[LabelValues, float]] = field(default_factory=list)
    histogram_rows: Sequence[tuple[LabelValues, Sequence[float], float]] = field(
        default_factory=list
    )
    bucket_edges: tuple[str, ...] = ()  # for histograms, "+Inf" last


def to_metric(family: Family) -> Metric:
    """The prometheus_client family for `collect()`."""
    labels = list(family.labelnames)
    if family.kind == "histogram":
        metric = HistogramMetricFamily(family.name, family.help, labels=labels)
        for values, counts, total in family.histogram_rows:
            running, buckets = 0.0, []
            for edge, count in zip(family.bucket_edges, counts, strict=True):
                running += count
                buckets.append((edge, running))
            metric.add_metric(list(values), buckets, total)
        return metric
    if family.kind == "info":
        info = InfoMetricFamily(family.name.removesuffix("_info"), family.help, labels=labels)
        for values, _ in family.rows:
            info.add_metric(list(values), {})
        return info
    simple: CounterMetricFamily | GaugeMetricFamily = (
        CounterMetricFamily(family.name, family.help, labels=labels)
        if family.kind == "counter"
        else GaugeMetricFamily(family.name, family.help, labels=labels)
    )
    for values, value in family.rows:
        simple.add_metric(list(values), value)
    return simple


def format_value(value: float) -> str:
    """A sample value as Prometheus parsers expect it."""
    if value != value:
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def format_values(values: Iterable[float]) -> list[str]:
    """`format_value` of each value, the common case (finite floats) without a Python loop."""
    values = list(values)
    try:
        # float's own repr is format_value's for every finite float, and runs in C; a sum
        # that is not finite means a NaN or an infinity somewhere (or an overflow: no harm).
        if math.isfinite(sum(values)):
            return list(map(float.__repr__, values))
    except TypeError:
        pass  # an int or another number: float() first, as format_value does
    return [format_value(value) for value in values]


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _lines(heads: Sequence[str], values: Sequence[str]) -> str:
    """head + value + newline for each sample, joined in C."""
    return "".join(chain.from_iterable(zip(heads, values, repeat("\n"))))


class Renderer:
    """Writes families as text 0.0.4 or OpenMetrics 1.0, caching each series' line head.

    A line head is everything before the value (`name{labels} `), kept per family by label
    values: a scrape then costs a look-up and a float repr per sample, both in C, instead of
    building every label string again. Only the values are formatted afresh, so the output is
    always the current one.
    """

    def __init__(self, cache_limit: int = 200_000) -> None:
        # (sample name, label names) -> label values -> line head
        self._heads: dict[tuple[str, tuple[str, ...]], dict[LabelValues, str]] = {}
        # (name, label names, bucket edges) -> label values -> bucket, _count and _sum heads
        self._histogram_heads: dict[
            tuple[str, tuple[str, ...], tuple[str, ...]], dict[LabelValues, tuple[str, ...]]
        ] = {}
        self._cached = 0
        self._cache_limit = cache_limit

    @property
    def cached(self) -> int:
        """Line heads cached (cleared past the limit)."""
        return self._cached

    def render(self, families: Iterable[Family], openmetrics: bool) -> Iterator[str]:
        """Yield the exposition text of each family."""
        if self._cached > self._cache_limit:
            # Label values churned (sessions come and go): start over.
            self._heads.clear()
            self._histogram_heads.clear()
            self._cached = 0
        for family in families:
            yield self._family(family, openmetrics)

    def _family(self, family: Family, openmetrics: bool) -> str:
        name, kind = family.name, family.kind
        exposed, sample = name, name
        if kind == "counter":
            sample = f"{name}_total"
            exposed = name if openmetrics else sample
        elif kind == "info":
            exposed = name.removesuffix("_info") if openmetrics else name
            kind = "info" if openmetrics else "gauge"
        header = f"# HELP {exposed} {_help(family.help)}\n# TYPE {exposed} {kind}\n"
        if family.kind == "histogram":
            return header + self._histogram(family)
        rows = family.rows
        if not rows:
            return header
        heads = self._heads_of(sample, family, [values for values, _ in rows])
        return header + _lines(heads, format_values([value for _, value in rows]))

    def _heads_of(self, sample: str, family: Family, labels: list[LabelValues]) -> list[str]:
        heads = self._heads.get((sample, family.labelnames))
        if heads is None:
            heads = self._heads[(sample, family.labelnames)] = {}
        found = list(map(heads.get, labels))
        if None in found:  # series new since the last scrape
            return [head if head is not None else self._head(heads, sample, family, values)
                    for head, values in zip(found, labels, strict=True)]
        return cast("list[str]", found)

    def _head(self, heads: dict[LabelValues, str], sample: str, family: Family,
              values: LabelValues) -> str:
        labels = _labelstring(family.labelnames, values) if family.labelnames else ""
        head = heads[values] = f"{sample}{{{labels}}} " if labels else f"{sample} "
        self._cached += 1
        return head

    def _histogram(self, family: Family) -> str:
        name, names, edges = family.name, family.labelnames, family.bucket_edges
        key = (name, names, edges)
        cache = self._histogram_heads.get(key)
        if cache is None:
            cache = self._histogram_heads[key] = {}
        heads: list[str] = []
        values: list[float] = []
        for labels, counts, total in family.histogram_rows:
            if len(counts) != len(edges):
                raise ValueError(f"{name}: {len(counts)} bucket counts for {len(edges)} edges")
            row_heads = cache.get(labels)
            if row_heads is None:
                row_heads = cache[labels] = _histogram_heads(name, names, edges, labels)
                self._cached += 1
            heads += row_heads
            # Cumulative counts, added in the same order (from 0.0) as the values always were.
            running = list(accumulate(counts, initial=0.0))
            values += running[1:]  # the leading 0.0 is the start, not a sample
            values.append(running[-1])  # _count
            values.append(total)
        return _lines(heads, format_values(values))


def _labelstring(names: tuple[str, ...], values: LabelValues) -> str:
    pairs = sorted(zip(names, values, strict=True))
    return ",".join(f'{n}="{_escape(v)}"' for n, v in pairs)


def _histogram_heads(name: str, names: tuple[str, ...], edges: tuple[str, ...],
                     values: LabelValues) -> tuple[str, ...]:
    """Line heads of one histogram series: each bucket, then _count and _sum."""
    bucket_names = (*names, "le")
    buckets = [f"{name}_bucket{{{_labelstring(bucket_names, (*values, edge))}}} "
               for edge in edges]
    labels = _labelstring(names, values) if names else ""
    braces = f"{{{labels}}}" if labels else ""
    return (*buckets, f"{name}_count{braces} ", f"{name}_sum{braces} ")


def without_created(text: str) -> str:
    """Drop the `_created` families the text format shows as separate gauges."""
    families = text.split("# HELP ")
    kept = [f for f in families if f and not f.split(" ", 1)[0].endswith("_created")]
    return "".join(f"# HELP {f}" for f in kept)
