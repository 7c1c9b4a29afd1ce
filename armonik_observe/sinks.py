"""The exporter's outputs besides /metrics, built from the settings in one place.

Each factory reads the settings (and the context the exporter gives every sink) and returns its
sink, or None when that output is off. A sink declares what it needs the collectors to read
(`pipeline.Needs`) and reports its own figures (`self_metrics`, `caches`); nothing else in the
exporter knows it. A new output is one more factory here and its options in config.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from armonik_observe.config import ServeSettings
from armonik_observe.pipeline import Sink


@dataclass(frozen=True)
class SinkContext:
    """What the exporter gives every sink factory besides the settings."""

    # Told of every batch of spans the trace exporter sent (the Prometheus sink takes its
    # histograms' exemplars from them).
    on_spans_exported: Callable[[Sequence[Any]], None] | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)


SinkFactory = Callable[[ServeSettings, SinkContext], Sink | None]


def archive(settings: ServeSettings, context: SinkContext) -> Sink | None:
    """The Parquet archive, with --archive DIR."""
    if settings.archive is None:
        return None
    from armonik_observe.archive.output import ArchiveOutput

    return ArchiveOutput(settings.archive, flush_interval=settings.archive_flush_interval,
                         retention=settings.archive_retention, grace=settings.archive_grace)


def traces(settings: ServeSettings, context: SinkContext) -> Sink | None:
    """OpenTelemetry spans, with --otlp-endpoint (or OTEL_EXPORTER_OTLP_*) or --traces-file."""
    if not settings.traces:
        return None
    from armonik_observe.traces.output import Destination, SpanOutput, resource_attributes
    from armonik_observe.traces.sink import TraceSink

    destination = Destination(endpoint=settings.otlp_endpoint, protocol=settings.otlp_protocol,
                              headers=settings.otlp_headers, file=settings.traces_file)
    resource = resource_attributes(settings.endpoint.url, context.environ)

    def output() -> SpanOutput:
        return SpanOutput(destination, sample_ratio=settings.trace_sample_ratio,
                          resource=resource, on_exported=context.on_spans_exported)

    max_age = settings.trace_session_max_age
    return TraceSink(output, phases=settings.trace_phases,
                     max_spans_per_session=settings.max_spans_per_session,
                     session_max_age_us=int(max_age.total_seconds() * 1_000_000))


SINK_FACTORIES: tuple[SinkFactory, ...] = (archive, traces)


def build_sinks(settings: ServeSettings, context: SinkContext,
                factories: Sequence[SinkFactory] = SINK_FACTORIES) -> list[Sink]:
    """The sinks the settings turn on, in the factories' order."""
    return [sink for factory in factories if (sink := factory(settings, context)) is not None]
