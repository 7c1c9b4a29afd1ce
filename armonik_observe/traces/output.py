"""Where spans go: the OpenTelemetry SDK, its batching, and its official OTLP exporters.

`SpanOutput` owns a TracerProvider whose id generator hands out the ids `ids.py` computed, a
TraceIdRatioBased sampler (every span of a session gets the same answer), and one
BatchSpanProcessor in front of the exporter `--otlp-protocol` names: OTLP gRPC or OTLP HTTP
(protobuf), or OTLP JSON lines in a file (`--traces-file`). What the queue drops (full) and what
the exporter fails to send (backend down or slow) is counted, never raised.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
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

from armonik_observe.traces import GRPC, HTTP
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

    def exporter(self, environ: Mapping[str, str] = os.environ) -> SpanExporter:
        """The official exporter for the protocol, the JSON-lines file exporter, or both."""
        if self.endpoint is None:
            if self.file is None:
                raise ValueError("traces need an OTLP endpoint or a file")
            return JsonLinesExporter(self.file)
        if self.file is not None:
            return BothExporters(JsonLinesExporter(self.file), self._otlp(environ))
        return self._otlp(environ)

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


class BothExporters(SpanExporter):
    """The file and the OTLP endpoint, both given: each batch goes to both; sent if both took it."""

    def __init__(self, file: SpanExporter, otlp: SpanExporter) -> None:
        self._exporters = (file, otlp)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export to each, even after one failed."""
        results = [exporter.export(spans) for exporter in self._exporters]
        ok = all(result == SpanExportResult.SUCCESS for result in results)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        """Shut each down."""
        for exporter in self._exporters:
            exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush each."""
        return all([exporter.force_flush(timeout_millis) for exporter in self._exporters])


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
    """What became of the spans written: sent, lost to the backend, left out by sampling."""

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


class SpanOutput:
    """Writes planned spans through the SDK; counts what is exported and what is dropped."""

    def __init__(self, destination: Destination, *, sample_ratio: float = 1.0,
                 resource: Mapping[str, str] | None = None,
                 on_exported: Exported | None = None,
                 exporter: SpanExporter | None = None, wait_when_full: bool = False) -> None:
        self._ids = PresetIds()
        # Live, a full queue drops (the exporter must keep up with the plane); a replay waits.
        self._wait_when_full = wait_when_full
        self.exporter = CountingExporter(exporter or destination.exporter(), on_exported)
        self._queue_size = destination.max_queue_size
        self._processor = BatchSpanProcessor(
            self.exporter, max_queue_size=self._queue_size,
            max_export_batch_size=min(EXPORT_BATCH, self._queue_size))
        self.provider = TracerProvider(
            resource=Resource.create(dict(resource or {})),
            sampler=TraceIdRatioBased(sample_ratio), id_generator=self._ids)
        self.provider.add_span_processor(self._processor)
        self._tracer = self.provider.get_tracer("armonik-observe")
        self.dropped: Counter[str] = Counter()
        self.written = 0  # spans sampled and queued
        self.unsampled = 0  # spans the sampler left out
        self._parents: dict[tuple[int, int], Context] = {}
        self._shut_down = False

    def write(self, plan: SpanPlan) -> None:
        """Start and end the plan's span (and its phases) with their own ids and times."""
        spans = 1 + len(plan.phases)
        if not self._room_for(spans) and self._wait_when_full:
            self.flush(FLUSH_TIMEOUT_S)  # blocks until what is queued is sent or failed
        if not self._room_for(spans):  # the SDK would drop spans unseen: count them here
            self.dropped["queue_full"] += spans
            return
        self._start_and_end(plan)
        for phase in plan.phases:
            self._start_and_end(phase)

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

    def _room_for(self, spans: int) -> bool:
        # The SDK drops the oldest span silently when its queue is full: look first and count.
        # (The queue is internal to BatchSpanProcessor; a test breaks if that changes.)
        queue = self._processor._batch_processor._queue
        return len(queue) + spans <= self._queue_size

    def counts(self) -> SpanCounts:
        """Spans exported, failed and unsampled so far (exported once the queue is flushed)."""
        exporter = self.exporter
        failed = exporter.failed
        if self._shut_down:  # the SDK gives up on what is still queued after 30 s: failed too
            failed = max(failed, self.written - exporter.exported)
        return SpanCounts(exporter.exported, failed + self.dropped.total(), self.unsampled)

    def flush(self, timeout_s: float) -> bool:
        """Export what is queued (blocking: run it in a thread)."""
        return self.provider.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        """Export what is queued, then stop (blocking: run it in a thread); what the SDK's
        shutdown left unsent counts as failed."""
        self.provider.shutdown()
        self._shut_down = True
