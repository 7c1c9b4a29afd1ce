"""Traces: task attempts traced per second, against the OpenTelemetry SDK's own ceiling.

Ours, end to end: detailed task facts (ListTasksDetailed pages of the `large` shape, 1,000 tasks
a page) go into the trace sink, which plans each task's spans and writes them through the SDK;
its BatchSpanProcessor encodes them and sends them over OTLP gRPC to a receiver running in
another process on loopback. A round ends when the receiver has every span.

The ceiling, in the same run: the SDK alone, with no facts and no plan: the same spans (a task
span with the task's attributes, child of its session's root; five phase spans under it),
started and ended through a TracerProvider whose BatchSpanProcessor OTLP-encodes each batch
into a no-op transport.

Targets (issue 10): ours >= 0.8 of the ceiling; ArmoniK's published peak (4,500 tasks/s) traced
without phase spans; the figure with phases (6 spans a task) reported. Rounds alternate the arms
(median of 3), the machine being noisy.

usage: python -m bench.bench_traces [--tasks 20000] [--rounds 3] [--quick]
Writes bench/results/traces.json. About a minute with the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as service
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as service_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from armonik_observe.fact_columns import TaskFacts
from armonik_observe.pipeline import Batch
from armonik_observe.traces import OTLP
from armonik_observe.traces.ids import session_span_id, trace_id
from armonik_observe.traces.output import Destination, SpanOutput
from armonik_observe.traces.plan import PHASES, task_attributes, task_rows
from armonik_observe.traces.sink import TraceSink
from bench import common
from bench.archive.facts import pages_of, synth_facts
from bench.report import Row, Run, info_row, parse_args, ratio_row

NAME = "traces"
TARGET_RATIO = 0.8
TARGET_PEAK = 4500.0  # tasks/s: ArmoniK's published peak
QUICK = {"tasks": 5000, "rounds": 1}
READY = "RECEIVER "
PHASE_NAMES = tuple(name for name, _, _ in PHASES)


# -- the receiver, in its own process -----------------------------------------------------------


class _Counting(service_grpc.TraceServiceServicer):
    """Counts the spans received, and writes the count to a file after each request."""

    def __init__(self, count_file: Path) -> None:
        self.spans = 0
        self._file = count_file
        self._lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> Any:
        received = sum(len(scope.spans) for resource in request.resource_spans
                       for scope in resource.scope_spans)
        with self._lock:
            self.spans += received
            self._file.write_text(str(self.spans))
        return service.ExportTraceServiceResponse()


def receiver_main(count_file: Path) -> None:
    """Serve OTLP gRPC on a free port and print it; keep `count_file` at the spans received."""
    server = grpc.server(futures.ThreadPoolExecutor(4),
                         options=[("grpc.max_receive_message_length", 64 << 20)])
    service_grpc.add_TraceServiceServicer_to_server(_Counting(count_file), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"{READY}{port}", flush=True)
    server.wait_for_termination()


# -- the two arms ---------------------------------------------------------------------------------


class _EncodeOnly(SpanExporter):
    """OTLP-encodes each batch and sends it nowhere: the SDK's own cost, transport excluded."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        encode_spans(spans).SerializeToString()
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""


def ceiling(rows: list[dict[str, Any]], phases: bool) -> dict[str, Any]:
    """The SDK alone: a span per task with the task's attributes (and five child spans of one
    attribute each, with phases), encoded into a no-op transport."""
    exporter = _EncodeOnly()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=1 << 16))
    tracer = provider.get_tracer("bench")
    attributes = [task_attributes(row) for row in rows]  # prepared: not the SDK's cost
    # Each task span is a child, as ours are (of its session's root span).
    sessions = {row["session_id"]: set_span_in_context(NonRecordingSpan(SpanContext(
        trace_id(row["session_id"]), session_span_id(row["session_id"]), True,
        TraceFlags(TraceFlags.SAMPLED)))) for row in rows}
    started = time.perf_counter()
    cpu = time.process_time()
    for row, attrs in zip(rows, attributes, strict=True):
        start, end = row["created_at"] * 1000, row["ended_at"] * 1000
        span = tracer.start_span("task", context=sessions[row["session_id"]], attributes=attrs,
                                 start_time=start)
        if phases:
            inside = set_span_in_context(span)
            for name in PHASE_NAMES:
                child = tracer.start_span(name, context=inside, start_time=start,
                                          attributes={"armonik.session.id": row["session_id"],
                                                      "armonik.task.id": row["task_id"]})
                child.end(end_time=end)
        span.end(end_time=end)
    provider.shutdown()  # exports everything queued
    return _figures(len(rows), exporter.spans, started, cpu)


def ours(pages: list[TaskFacts], endpoint: str, phases: bool,
         received: Callable[[], int] | None) -> dict[str, Any]:
    """The trace sink end to end: to the receiver over OTLP gRPC, or (without `received`)
    into the ceiling's no-op transport, which tells our cost from the transport's."""
    before = received() if received else 0
    destination = Destination(endpoint=endpoint, max_queue_size=1 << 16)
    exporters = None if received else {OTLP: _EncodeOnly()}
    sink = TraceSink(lambda: SpanOutput(destination, exporters=exporters), phases=phases)

    async def run() -> int:
        await sink.start()
        for page in pages:
            sink.consume(Batch(facts=page))
        await sink.stop()  # flushes: every span is sent
        assert sink.output is not None
        return sink.output.lanes[OTLP].exporter.exported

    started, cpu = time.perf_counter(), time.process_time()
    exported = asyncio.run(run())
    figures = _figures(sum(len(p) for p in pages), exported, started, cpu)
    if received is not None:
        common.wait_for(lambda: received() - before >= exported, 30, "the receiver")
        figures["received"] = received() - before
    return figures


def _figures(tasks: int, spans: int, started: float, cpu: float) -> dict[str, Any]:
    wall, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    return {"tasks": tasks, "spans": spans, "wall_s": round(wall, 3), "cpu_s": round(cpu_s, 3),
            "tasks_per_s": round(tasks / wall, 1), "spans_per_s": round(spans / wall, 1)}


# -- the run --------------------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Alternated rounds of both arms, with and without phase spans."""
    detailed, _ = synth_facts(args.tasks)
    pages = pages_of(detailed)
    rows = [row for page in pages for row in task_rows(page)]
    with tempfile.TemporaryDirectory() as scratch:
        count_file = Path(scratch) / "spans"
        count_file.write_text("0")
        cmd = [sys.executable, "-m", "bench.bench_traces", "--receiver", str(count_file)]
        with common.running(cmd, name="receiver", ready_prefix=READY, timeout=30) as receiver:
            endpoint = f"http://127.0.0.1:{receiver.ready.removeprefix(READY).strip()}"

            def received() -> int:
                return int(count_file.read_text() or 0)

            rounds: dict[str, list[dict[str, Any]]] = {}
            for _ in range(args.rounds):
                for phases in (False, True):
                    label = "phases" if phases else "task"
                    rounds.setdefault(f"ceiling_{label}", []).append(ceiling(rows, phases))
                    rounds.setdefault(f"ours_{label}", []).append(
                        ours(pages, endpoint, phases, received))
                    rounds.setdefault(f"ours_noop_{label}", []).append(
                        ours(pages, endpoint, phases, None))
    return {key: {"median_tasks_per_s": statistics.median(r["tasks_per_s"] for r in runs),
                  "rounds": runs} for key, runs in rounds.items()}


def rows_of(result: dict[str, Any]) -> list[Row]:
    """The table: each arm's rate, the ratio to the ceiling, the peak target."""
    table: list[Row] = []
    for label, spans in (("task", 1), ("phases", 6)):
        mine = result[f"ours_{label}"]["median_tasks_per_s"]
        sdk = result[f"ceiling_{label}"]["median_tasks_per_s"]
        rounds = ", ".join(f"{r['tasks_per_s']:,.0f}" for r in result[f"ours_{label}"]["rounds"])
        noop = result[f"ours_noop_{label}"]["median_tasks_per_s"]
        table += [
            info_row(f"SDK ceiling, {spans} span(s)/task", sdk, "tasks/s",
                     means="spans built, ended and OTLP-encoded by the SDK alone, no transport"),
            info_row(f"ours, no transport / ceiling, {spans} span(s)/task", noop / sdk,
                     means="the trace sink into the ceiling's no-op transport: our own cost, "
                           "without the OTLP send and its receiver", note=f"{noop:,.0f} tasks/s"),
            ratio_row(f"ours / ceiling, {spans} span(s)/task", mine / sdk, TARGET_RATIO,
                      means="the trace sink end to end (facts, plan, SDK, OTLP gRPC to a "
                            "receiver) over the SDK alone", note=f"ours {mine:,.0f} tasks/s "
                                                                  f"(rounds {rounds})"),
        ]
    table.append(ratio_row("ours without phases", result["ours_task"]["median_tasks_per_s"],
                           TARGET_PEAK, "tasks/s", means="task attempts traced per second, "
                           "against ArmoniK's published peak of 4,500 tasks/s"))
    return table


def options() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000, help="task attempts per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds (median)")
    parser.add_argument("--receiver", type=Path, help=argparse.SUPPRESS)
    return parse_args(parser, QUICK)


def main() -> None:
    args = options()
    if args.receiver:
        receiver_main(args.receiver)
        return
    run = Run(NAME, "traces against the OTel SDK's ceiling", ("traces",))
    result = run.attempt("traces", measure, args, section="traces")
    if result is not None:
        run.add("traces", rows_of(result))
    run.finish()


if __name__ == "__main__":
    main()
