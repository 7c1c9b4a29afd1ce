"""Where spans go: the OpenTelemetry SDK, its batching, and its official OTLP exporters.

`SpanOutput` owns a TracerProvider whose id generator hands out the ids `ids.py` computed, a
TraceIdRatioBased sampler (every span of a session gets the same answer), and one
BatchSpanProcessor per destination: the exporter `--otlp-protocol` names (OTLP gRPC or OTLP HTTP,
protobuf) and/or OTLP JSON lines in a file (`--traces-file`). Each destination has its own queue
and export thread, so a backend that is down or slow never costs the file a span. What a queue
drops (full) and what an exporter fails to send is counted per destination, never raised.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

from armonik_observe.traces import FILE, GRPC, HTTP, OTLP
from armonik_observe.traces.plan import SpanPlan

SERVICE_NAME = "armonik-observe"
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_ROOT = Context()
_PARENTS_KEPT = 10_000  # parent contexts cached (then cleared): sessions' roots, parent tasks
# Spans per OTLP request: fewer, larger requests cost the export thread (and the GIL the event
# loop shares with it) less than the SDK's default 512.
EXPORT_BATCH = 2048
FLUSH_TIMEOUT_S = 60.0  # a replay waiting for room in the queue, at most
Exported = Callable[[Sequence[ReadableSpan]], None]


@dataclass(frozen=True)
class Destination:
    """Where spans are sent: an OTLP endpoint (with its protocol and headers) and/or a file."""

    endpoint: str | None = None
    protocol: str = GRPC
    headers: tuple[tuple[str, str], ...] = ()
    file: Path | None = None
    max_queue_size: int = 8192

    def exporters(self, environ: Mapping[str, str] = os.environ) -> dict[str, SpanExporter]:
        """The file's exporter ("file") and/or the official one for the protocol ("otlp"):
        the file first, so that flushing and shutting down never wait on a slow backend first."""
        exporters: dict[str, SpanExporter] = {}
        if self.file is not None:
            exporters[FILE] = JsonLinesExporter(self.file)
        if self.endpoint is not None:
            exporters[OTLP] = self._otlp(environ)
        if not exporters:
            raise ValueError("traces need an OTLP endpoint or a file")
        return exporters

    def _otlp(self, environ: Mapping[str, str]) -> SpanExporter:
        assert self.endpoint is not None
        headers = dict(self.headers) or None
        if self.protocol == HTTP:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter as HttpExporter,
            )
            endpoint = self.endpoint.rstrip("/")
            # A base URL gets the signal's path; OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is the
            # whole URL already, as OpenTelemetry specifies.
            as_is = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == self.endpoint
            if not as_is and not endpoint.endswith("/v1/traces"):
                endpoint += "/v1/traces"
            return HttpExporter(endpoint=endpoint, headers=headers)
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )
        # http:// says plaintext; otherwise the SDK decides (https://, or a bare host:port with
        # OTEL_EXPORTER_OTLP_[TRACES_]INSECURE).
        insecure = True if self.endpoint.startswith("http://") else None
        return GrpcExporter(endpoint=self.endpoint, headers=headers, insecure=insecure)


def resource_attributes(control_plane: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The resource of every span: service.name (unless OTEL_SERVICE_NAME says it) and the
    control plane's endpoint; OTEL_RESOURCE_ATTRIBUTES adds to it (the SDK reads it)."""
    attributes = {"armonik.control_plane.endpoint": control_plane}
    if "OTEL_SERVICE_NAME" not in environ:
        attributes["service.name"] = SERVICE_NAME
    return attributes


def otlp_json(spans: Sequence[ReadableSpan]) -> str:
    """Spans as one OTLP/JSON ExportTraceServiceRequest: ids in hex and enums as integers, as
    the OTLP specification asks (protobuf's own JSON mapping writes base64 and enum names)."""
    request = MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    for resource in request.get("resourceSpans", ()):
        for scope in resource.get("scopeSpans", ()):
            for span in scope.get("spans", ()):
                _ids_in_hex(span)
                for link in span.get("links", ()):
                    _ids_in_hex(link)
    return json.dumps(request, separators=(",", ":"))


def _ids_in_hex(message: dict[str, Any]) -> None:
    for key in ("traceId", "spanId", "parentSpanId"):
        if key in message:
            message[key] = base64.b64decode(message[key]).hex()


class JsonLinesExporter(SpanExporter):
    """OTLP JSON, one ExportTraceServiceRequest a line (the collector's file exporter format)."""

    def __init__(self, path: Path) -> None:
        self._file: IO[str] = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Append the spans as one line."""
        line = otlp_json(spans)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Close the file."""
        with self._lock:
            self._file.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Every line is flushed as written."""
        return True


class CountingExporter(SpanExporter):
    """Counts what the wrapped exporter sent and failed to send, and reports what it sent."""

    def __init__(self, inner: SpanExporter, on_exported: Exported | None = None) -> None:
        self._inner = inner
        self._on_exported = on_exported
        self.exported = 0
        self.failed = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export through the wrapped exporter; a failure drops the batch (counted)."""
        try:
            result = self._inner.export(spans)
        except Exception:  # an exporter that raises loses its batch like one that fails
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self.exported += len(spans)
            if self._on_exported is not None:
                self._on_exported(spans)
        else:
            self.failed += len(spans)
        return result

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return self._inner.force_flush(timeout_millis)


@dataclass(frozen=True)
class SpanCounts:
    """What became of the spans written to one destination: sent, lost (its queue was full or
    its backend failed), left out by sampling (before any destination)."""

    exported: int
    failed: int
    unsampled: int


class PresetIds(IdGenerator):
    """Hands out the ids set just before a span starts (the SDK asks for them)."""

    def __init__(self) -> None:
        self.trace_id = 0
        self.span_id = 0

    def generate_trace_id(self) -> int:
        """The preset trace id (used for a trace's root span only)."""
        return self.trace_id

    def generate_span_id(self) -> int:
        """The preset span id."""
        return self.span_id


class Lane(SpanProcessor):
    """One destination: its counted exporter behind a BatchSpanProcessor and queue of its own,
    given only the spans of writes its queue had room for."""

    def __init__(self, exporter: CountingExporter, queue_size: int) -> None:
        self.exporter = exporter
        self.queue_size = queue_size
        self.processor = BatchSpanProcessor(
            exporter, max_queue_size=queue_size,
            max_export_batch_size=min(EXPORT_BATCH, queue_size))
        self.open = True  # whether the write under way goes to this destination
        self.queue_full = 0  # spans this destination lost to its full queue
        self.queued = 0  # spans handed to its queue

    def on_end(self, span: ReadableSpan) -> None:
        """Queue the ended span, unless the write under way found this queue full."""
        if self.open:
            self.processor.on_end(span)

    def shutdown(self) -> None:
        """Export what is queued, then stop the export thread."""
        self.processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export what is queued."""
        return self.processor.force_flush(timeout_millis)

    def room_for(self, spans: int) -> bool:
        """Whether the queue takes `spans` more without dropping any."""
        # The SDK drops the oldest span (logging each) when its queue is full: look first, count.
        # (The queue is internal to BatchSpanProcessor; a test breaks if that changes.)
        return len(self.processor._batch_processor._queue) + spans <= self.queue_size

    def counts(self, unsampled: int, shut_down: bool) -> SpanCounts:
        """What became of the spans given to this destination."""
        exported, failed = self.exporter.exported, self.exporter.failed
        if shut_down:  # the SDK gives up on what is still queued after 30 s: failed too
            failed = max(failed, self.queued - exported)
        return SpanCounts(exported, failed + self.queue_full, unsampled)


class SpanOutput:
    """Writes planned spans through the SDK to each destination; counts what each exported and
    dropped."""

    def __init__(self, destination: Destination, *, sample_ratio: float = 1.0,
                 resource: Mapping[str, str] | None = None,
                 on_exported: Exported | None = None,
                 exporters: Mapping[str, SpanExporter] | None = None,
                 wait_when_full: bool = False) -> None:
        self._ids = PresetIds()
        # Live, a full queue drops (the exporter must keep up with the plane); a replay waits.
        self._wait_when_full = wait_when_full
        chosen = exporters or destination.exporters()
        # Exemplars name traces the OTLP backend has, when there is one.
        exemplars = OTLP if OTLP in chosen else next(iter(chosen))
        self.lanes = {name: Lane(CountingExporter(exporter, on_exported if name == exemplars
                                                  else None), destination.max_queue_size)
                      for name, exporter in chosen.items()}
        self.provider = TracerProvider(
            resource=Resource.create(dict(resource or {})),
            sampler=TraceIdRatioBased(sample_ratio), id_generator=self._ids)
        for lane in self.lanes.values():
            self.provider.add_span_processor(lane)
        self._tracer = self.provider.get_tracer("armonik-observe")
        self.written = 0  # spans sampled and queued somewhere
        self.unsampled = 0  # spans the sampler left out
        self._parents: dict[tuple[int, int], Context] = {}
        self._shut_down = False

    def write(self, plan: SpanPlan) -> None:
        """Start and end the plan's span (and its phases) with their own ids and times."""
        spans = 1 + len(plan.phases)
        full = self._full(spans)
        if full and self._wait_when_full:
            self.flush(FLUSH_TIMEOUT_S)  # blocks until what is queued is sent or failed
            full = self._full(spans)
        for lane in self.lanes.values():  # a full queue would drop its oldest: count instead
            lane.open = lane not in full
            if not lane.open:
                lane.queue_full += spans
        if len(full) == len(self.lanes):
            return
        sampled = self.written
        self._start_and_end(plan)
        for phase in plan.phases:
            self._start_and_end(phase)
        for lane in self.lanes.values():
            if lane.open:
                lane.queued += self.written - sampled

    def _full(self, spans: int) -> list[Lane]:
        return [lane for lane in self.lanes.values() if not lane.room_for(spans)]

    def _start_and_end(self, plan: SpanPlan) -> None:
        self._ids.trace_id, self._ids.span_id = plan.trace_id, plan.span_id
        context = self._parent(plan.trace_id, plan.parent_id)
        links = [Link(SpanContext(plan.trace_id, link.span_id, True, _SAMPLED), link.attributes)
                 for link in plan.links]
        span = self._tracer.start_span(plan.name, context=context, attributes=plan.attributes,
                                       links=links, start_time=plan.start_ns,
                                       record_exception=False, set_status_on_exception=False)
        if plan.error is not None:
            span.set_status(Status(StatusCode.ERROR, plan.error))
        span.end(end_time=plan.end_ns)
        if span.get_span_context().trace_flags.sampled:
            self.written += 1
        else:
            self.unsampled += 1

    def _parent(self, trace: int, parent: int | None) -> Context:
        """The context naming a span's parent (most tasks share their session's root)."""
        if parent is None:
            return _ROOT  # a root: not a child of whatever span is current
        key = (trace, parent)
        context = self._parents.get(key)
        if context is None:
            if len(self._parents) >= _PARENTS_KEPT:
                self._parents.clear()
            span = NonRecordingSpan(SpanContext(trace, parent, True, _SAMPLED))
            context = self._parents[key] = set_span_in_context(span, _ROOT)
        return context

    def counts(self) -> dict[str, SpanCounts]:
        """Per destination, spans exported, failed and unsampled so far (exported once the
        queues are flushed)."""
        return {name: lane.counts(self.unsampled, self._shut_down)
                for name, lane in self.lanes.items()}

    def flush(self, timeout_s: float) -> bool:
        """Export what is queued (blocking: run it in a thread)."""
        return self.provider.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        """Export what is queued, then stop (blocking: run it in a thread); what the SDK's
        shutdown left unsent counts as failed."""
        self.provider.shutdown()
        self._shut_down = True
