"""Real OTLP receivers for tests: gRPC (opentelemetry-proto's trace service) and HTTP/protobuf.

Each records every span it receives, flattened to `ReceivedSpan`, on port 0.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as service
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as service_grpc
from opentelemetry.proto.common.v1 import common_pb2


def _value(value: common_pb2.AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as an OTLP backend received it (ids as ints, times in ns)."""

    name: str
    trace_id: int
    span_id: int
    parent_id: int | None
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    links: tuple[tuple[int, int, tuple[tuple[str, Any], ...]], ...]
    status_code: int  # 0 unset, 1 ok, 2 error
    status_message: str
    resource: dict[str, Any] = field(compare=False)


def spans_of(request: service.ExportTraceServiceRequest) -> list[ReceivedSpan]:
    """Flatten a request's resource spans."""
    found = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope in resource_spans.scope_spans:
            for span in scope.spans:
                found.append(ReceivedSpan(
                    name=span.name, trace_id=int.from_bytes(span.trace_id),
                    span_id=int.from_bytes(span.span_id),
                    parent_id=int.from_bytes(span.parent_span_id) or None,
                    start_ns=span.start_time_unix_nano, end_ns=span.end_time_unix_nano,
                    attributes=_attributes(span.attributes),
                    links=tuple((int.from_bytes(link.trace_id), int.from_bytes(link.span_id),
                                 tuple(sorted(_attributes(link.attributes).items())))
                                for link in span.links),
                    status_code=span.status.code, status_message=span.status.message,
                    resource=resource))
    return found


class Received:
    """Every span received, and a way to wait for more."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self._more = asyncio.Event()

    def take(self, request: service.ExportTraceServiceRequest) -> None:
        """Record a request's spans."""
        self.requests += 1
        self.spans += spans_of(request)
        self._more.set()

    async def wait_for(self, count: int, within: float = 30.0) -> None:
        """Wait until at least `count` spans arrived."""
        async with asyncio.timeout(within):
            while len(self.spans) < count:
                self._more.clear()
                await self._more.wait()


class _TraceService(service_grpc.TraceServiceServicer):
    def __init__(self, received: Received) -> None:
        self._received = received

    async def Export(self, request: Any, context: Any) -> Any:
        self._received.take(request)
        return service.ExportTraceServiceResponse()


@asynccontextmanager
async def grpc_receiver() -> AsyncIterator[tuple[str, Received]]:
    """An OTLP gRPC receiver on port 0: (its http:// endpoint, what it received)."""
    received = Received()
    server = grpc.aio.server()
    service_grpc.add_TraceServiceServicer_to_server(_TraceService(received), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        await server.stop(0)


@asynccontextmanager
async def http_receiver() -> AsyncIterator[tuple[str, Received]]:
    """An OTLP HTTP/protobuf receiver on port 0: (its base URL, what it received)."""
    received = Received()

    async def export(request: web.Request) -> web.Response:
        message = service.ExportTraceServiceRequest.FromString(await request.read())
        received.take(message)
        body = service.ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", export)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        await runner.cleanup()
