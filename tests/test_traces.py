"""OpenTelemetry traces against the simulator's truth, through real OTLP receivers (issue 10)."""

from __future__ import annotations

import json
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from exporter_harness import exporter_for, sample, settle
from otlp_receiver import ReceivedSpan, grpc_receiver, http_receiver
from test_archive_truth import MIXED, ended, run_to_end

from armonik_observe.model import SessionStatus
from armonik_observe.service import Exporter
from armonik_observe.simulator.records import SimSession, SimTask
from armonik_observe.simulator.server import Simulator
from armonik_observe.traces.ids import session_span_id, span_id, trace_id

FAILED = {"ERROR", "TIMEOUT", "RETRIED"}
PHASES = {"queued": ("submitted_at", "received_at"), "acquisition": ("received_at", "acquired_at"),
          "fetch": ("acquired_at", "fetched_at"), "processing": ("started_at", "processed_at"),
          "finalize": ("processed_at", "ended_at")}


def owners(sim: Simulator) -> dict[str, str]:
    return {r.result_id: r.owner_task_id for r in sim.plane.results.values() if r.owner_task_id}


def expected_task(task: SimTask, producers: dict[str, str]) -> dict[str, Any]:
    """The task span the truth implies: ids, parent, times, links, status, attributes."""
    links = [(trace_id(task.session_id), span_id(task.retry_of_ids[-1]),
              (("armonik.link", "retry_of"),))] if task.retry_of_ids else []
    links += [(trace_id(task.session_id), span_id(producers[r]),
               (("armonik.link", "data_dependency"), ("armonik.result.id", r)))
              for r in task.data_dependencies if r in producers]
    options = task.options
    attributes = {
        "armonik.session.id": task.session_id, "armonik.task.id": task.task_id,
        "armonik.task.status": task.status.name, "armonik.partition.id": options.partition_id,
        "armonik.application.name": options.application_name,
        "armonik.application.version": options.application_version,
        "armonik.application.namespace": options.application_namespace,
        "armonik.application.service": options.application_service,
        "armonik.pod.hostname": task.pod_hostname, "armonik.task.initial_id":
            task.initial_task_id, "armonik.task.priority": options.priority,
        "armonik.task.max_retries": options.max_retries,
        **{f"armonik.task.option.{k}": v for k, v in options.options.items()},
    }
    failed = task.status.name in FAILED
    return {
        "trace_id": trace_id(task.session_id), "span_id": span_id(task.task_id),
        "parent_id": span_id(task.created_by) if task.created_by
        else session_span_id(task.session_id),
        "start_ns": (task.created_at or 0) * 1000, "end_ns": (task.ended_at or 0) * 1000,
        "links": tuple(links), "status_code": 2 if failed else 0,
        "status_message": (task.output_error or task.status_message or task.status.name)
        if failed else "",
        "attributes": {k: v for k, v in attributes.items() if v not in ("", None)},
    }


def assert_task_spans_equal_the_truth(sim: Simulator, spans: list[ReceivedSpan]) -> None:
    truth = ended(sim)
    tasks = [s for s in spans if s.name == "task"]
    assert Counter(s.span_id for s in tasks) == Counter(span_id(t.task_id) for t in truth)
    by_id = {s.span_id: s for s in tasks}
    producers = owners(sim)
    for task in truth:
        got, want = by_id[span_id(task.task_id)], expected_task(task, producers)
        for key, value in want.items():
            if key == "attributes":
                shown = {k: v for k, v in got.attributes.items() if k in value}
                assert shown == value, task.task_id
                assert not {k for k in got.attributes if k not in value
                            and not k.endswith("_seconds")}, task.task_id
            else:
                assert getattr(got, key) == value, (task.task_id, key)


def assert_phases_nest_in_their_task(sim: Simulator, spans: list[ReceivedSpan]) -> None:
    by_id = {s.span_id: s for s in spans}
    phases = [s for s in spans if s.name in PHASES]
    expected = {(t.task_id, name) for t in ended(sim) for name, (a, b) in PHASES.items()
                if getattr(t, a) is not None and getattr(t, b) is not None}
    assert {(s.attributes["armonik.task.id"], s.name) for s in phases} == expected
    for phase in phases:
        parent = by_id[phase.parent_id or 0]
        assert parent.name == "task" and parent.trace_id == phase.trace_id
        assert phase.attributes["armonik.session.id"] == parent.attributes["armonik.session.id"]
        assert parent.start_ns <= phase.start_ns <= phase.end_ns <= parent.end_ns


def assert_session_spans_equal_the_truth(sim: Simulator, spans: list[ReceivedSpan]) -> None:
    stopped = [s for s in sim.true_sessions() if s.status not in (SessionStatus.RUNNING,
                                                                   SessionStatus.PAUSED)]
    roots = {s.span_id: s for s in spans if s.name == "session"}
    assert set(roots) == {session_span_id(s.session_id) for s in stopped}
    for session in stopped:
        root = roots[session_span_id(session.session_id)]
        assert (root.trace_id, root.parent_id) == (trace_id(session.session_id), None)
        assert root.start_ns == (session.created_at or 0) * 1000
        assert root.end_ns == end_of(session) * 1000
        assert root.attributes["armonik.session.status"] == session.status.name


def end_of(session: SimSession) -> int:
    ends = [t for t in (session.cancelled_at, session.closed_at) if t is not None]
    return min(ends) if ends else (session.purged_at or session.deleted_at or 0)


async def traced_run(sim: Simulator, endpoint: str, **options: Any) -> Exporter:
    """Run the scenario to its end under an exporter sending spans to `endpoint`."""
    async with exporter_for(sim, otlp_endpoint=endpoint, **options) as exporter:
        await settle(exporter, 1)
        await run_to_end(sim, exporter)
        await settle(exporter)
    return exporter


@pytest.mark.parametrize("receiver", [grpc_receiver, http_receiver])
async def test_one_span_per_task_attempt_equal_to_the_truth(manual_sim: Any,
                                                            receiver: Any) -> None:
    async with manual_sim(MIXED) as (sim, _), receiver() as (endpoint, received):
        protocol = "grpc" if receiver is grpc_receiver else "http/protobuf"
        exporter = await traced_run(sim, endpoint, otlp_protocol=protocol)
        spans = received.spans
        assert_task_spans_equal_the_truth(sim, spans)
        assert_phases_nest_in_their_task(sim, spans)
        assert_session_spans_equal_the_truth(sim, spans)
        truth = ended(sim)
        assert any(t.retry_of_ids for t in truth) and any(t.created_by for t in truth)
        assert any(t.data_dependencies for t in truth)
        assert {s.resource["service.name"] for s in spans} == {"armonik-observe"}
        assert sample(exporter, "armonik_observe_spans_exported_total",
                      {"destination": "otlp"}) == len(spans)
        assert sample(exporter, "armonik_observe_spans_dropped_total",
                      {"reason": "export_failed", "destination": "otlp"}) == 0


async def test_a_restart_sends_the_same_spans_again(manual_sim: Any) -> None:
    async with manual_sim(MIXED) as (sim, _), grpc_receiver() as (endpoint, received):
        await traced_run(sim, endpoint)
        first = {(s.trace_id, s.span_id, s.parent_id, s.start_ns, s.end_ns)
                 for s in received.spans if s.name != "session"}
        received.spans.clear()
        async with exporter_for(sim, otlp_endpoint=endpoint, backfill=3600) as again:
            await settle(again)
        second = {(s.trace_id, s.span_id, s.parent_id, s.start_ns, s.end_ns)
                  for s in received.spans if s.name != "session"}
        assert second == first and len(first) > 200


async def test_without_phases_a_task_is_one_span(manual_sim: Any) -> None:
    async with manual_sim(MIXED) as (sim, _), grpc_receiver() as (endpoint, received):
        await traced_run(sim, endpoint, trace_phases=False)
        assert {s.name for s in received.spans} == {"task", "session"}
        assert_task_spans_equal_the_truth(sim, received.spans)


async def test_sampling_keeps_whole_sessions_and_the_limit_counts_drops(manual_sim: Any) -> None:
    async with manual_sim(MIXED) as (sim, _), grpc_receiver() as (endpoint, received):
        exporter = await traced_run(sim, endpoint, trace_sample_ratio=0.5,
                                    max_spans_per_session=20, trace_phases=False)
        kept = {s.trace_id for s in received.spans}
        sessions = {t.session_id for t in ended(sim)}
        assert 0 < len(kept) < len(sessions)  # MIXED has 5 sessions
        per_session = Counter(s.trace_id for s in received.spans if s.name == "task")
        assert max(per_session.values()) <= 20
        tasks_per_session = Counter(t.session_id for t in ended(sim))
        assert sample(exporter, "armonik_observe_spans_dropped_total",
                      {"reason": "session_limit", "destination": ""}) == sum(
            max(0, n - 20) for n in tasks_per_session.values()) > 0


async def test_the_session_limit_keeps_tasks_whole_and_counts_spans(manual_sim: Any) -> None:
    limit = 50
    async with manual_sim(MIXED) as (sim, _), grpc_receiver() as (endpoint, received):
        exporter = await traced_run(sim, endpoint, max_spans_per_session=limit)
        spans = [s for s in received.spans if s.name != "session"]
        per_session = Counter(s.trace_id for s in spans)
        assert max(per_session.values()) <= limit
        by_id = {s.span_id: s for s in spans}
        for phase in (s for s in spans if s.name in PHASES):  # never a phase without its task
            assert by_id[phase.parent_id or 0].name == "task"
        true_spans = sum(1 + sum(getattr(t, a) is not None and getattr(t, b) is not None
                                 for a, b in PHASES.values()) for t in ended(sim))
        dropped = sample(exporter, "armonik_observe_spans_dropped_total",
                         {"reason": "session_limit", "destination": ""})
        assert dropped == true_spans - len(spans) > 0


async def test_a_dead_backend_loses_spans_but_nothing_else(manual_sim: Any, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           ) -> None:
    from test_exporter_faults import free_port

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0.5")
    path = tmp_path / "spans.jsonl"
    async with manual_sim(MIXED) as (sim, _):
        exporter = await traced_run(sim, f"http://127.0.0.1:{free_port()}", traces_file=path)
        failed = sample(exporter, "armonik_observe_spans_dropped_total",
                        {"reason": "export_failed", "destination": "otlp"})
        assert failed > 0
        assert sample(exporter, "armonik_observe_spans_exported_total",
                      {"destination": "otlp"}) == 0
        assert sum(exporter.sink.facts.ended.values()) == len(ended(sim))  # metrics unharmed
        # The file beside the dead backend has its own queue and thread: it loses nothing.
        in_file = spans_of_otlp_json(path)
        assert {span for name, _, span, *_ in in_file if name == "task"} == {
            span_id(t.task_id) for t in ended(sim)}
        assert sample(exporter, "armonik_observe_spans_exported_total",
                      {"destination": "file"}) == len(in_file)
        for reason in ("queue_full", "export_failed"):
            assert sample(exporter, "armonik_observe_spans_dropped_total",
                          {"reason": reason, "destination": "file"}) == 0


async def test_duration_buckets_carry_exemplars_of_exported_task_spans(manual_sim: Any) -> None:
    import aiohttp
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    async with (
        manual_sim(MIXED) as (sim, _),
        grpc_receiver() as (endpoint, received),
        exporter_for(sim, otlp_endpoint=endpoint) as exporter,
        aiohttp.ClientSession() as http,
    ):
        await settle(exporter, 1)
        await run_to_end(sim, exporter)
        await settle(exporter)
        await exporter.pipeline.flush()  # the spans are exported: exemplars are offered
        headers = {"Accept": "application/openmetrics-text; version=1.0.0"}
        async with http.get(exporter.http.url + "/metrics", headers=headers) as reply:
            text = await reply.text()
        async with http.get(exporter.http.url + "/metrics") as reply:
            assert " # {" not in await reply.text()  # the text format has none
    tasks = {s.span_id: s for s in received.spans if s.name == "task"}
    checked = 0
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("armonik_task_") or family.type != "histogram":
            continue
        attribute = f"armonik.task.{family.name.removeprefix('armonik_task_')}"
        edges: dict[tuple[Any, ...], float] = {}
        for s in family.samples:
            if not s.name.endswith("_bucket"):
                continue
            key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
            upper, lower = float(s.labels["le"]), edges.get(key, float("-inf"))
            edges[key] = upper
            if s.exemplar is None:
                continue
            span = tasks[int(s.exemplar.labels["span_id"], 16)]
            assert int(s.exemplar.labels["trace_id"], 16) == span.trace_id
            assert s.exemplar.value == span.attributes[attribute]
            assert lower < s.exemplar.value <= upper
            assert dict(key)["status"] == span.attributes["armonik.task.status"]
            checked += 1
    assert checked >= 20


def comparable(spans: list[ReceivedSpan]) -> set[tuple[Any, ...]]:
    """Everything a backend stores of a span, hashable."""
    return {(s.name, s.trace_id, s.span_id, s.parent_id, s.start_ns, s.end_ns, s.links,
             s.status_code, s.status_message, repr(sorted(s.attributes.items(), key=str)))
            for s in spans}


async def test_the_archive_gives_the_spans_sent_live(manual_sim: Any, tmp_path: Path) -> None:
    import asyncio
    import sys

    directory = tmp_path / "archive"
    async with manual_sim(MIXED) as (sim, _), grpc_receiver() as (endpoint, live):
        await traced_run(sim, endpoint, archive=directory, archive_flush_interval=0.2)
    async with grpc_receiver() as (endpoint, replayed):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "armonik_observe.cli", "traces", "--archive", str(directory),
            "--otlp-endpoint", endpoint, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
    sent = f"sent the spans of {directory}: {len(live.spans)} to {endpoint} (grpc)\n"
    assert out.decode() == sent
    assert comparable(replayed.spans) == comparable(live.spans)


async def test_replaying_an_unknown_session_is_one_line(tmp_path: Path) -> None:
    from test_archive_writer import fact, write
    from test_cli_serve import assert_one_line_error, run_cli

    from armonik_observe.fact_columns import TaskFacts
    from armonik_observe.pipeline import Batch

    directory = tmp_path / "archive"
    await write(directory, Batch(facts=TaskFacts.of([fact(1)])))
    result = run_cli("traces", "--archive", str(directory), "--traces-file",
                     str(tmp_path / "spans.jsonl"), "no-such-session")
    assert_one_line_error(result, "no-such-session")
    result = run_cli("traces", "--archive", str(directory))
    assert_one_line_error(result, "--otlp-endpoint or --traces-file")


def test_a_slow_backend_fills_a_bounded_queue_and_the_overflow_is_counted(
        caplog: pytest.LogCaptureFixture) -> None:
    """The stuck backend's queue stays bounded and its overflow is counted; the file beside it,
    with a queue of its own, gets every span; the SDK never drops (nor logs) a span itself."""
    import logging
    import threading

    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    from armonik_observe.traces.output import Destination, SpanOutput
    from armonik_observe.traces.plan import SpanPlan

    release = threading.Event()

    class Backend(SpanExporter):
        """A backend that answers at once, or not until released when stuck."""

        def __init__(self, stuck: bool) -> None:
            self.stuck = stuck
            self.spans = 0

        def export(self, spans: Any) -> SpanExportResult:
            if self.stuck:
                release.wait(30)
            self.spans += len(spans)
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            """Nothing to release."""

    stuck, fast = Backend(stuck=True), Backend(stuck=False)
    output = SpanOutput(Destination(file=Path("unused"), max_queue_size=512),
                        exporters={"file": fast, "otlp": stuck})
    lane, beside = output.lanes["otlp"], output.lanes["file"]
    with caplog.at_level(logging.WARNING, logger="opentelemetry"):
        for index in range(2000):
            output.write(SpanPlan("task", 1, index + 1, None, 0, 1, {}))
            if index % 256 == 255:
                beside.force_flush()  # the file keeps up, whatever the threads' scheduling
    queued = lane.processor._batch_processor._queue  # what the SDK holds, bounded
    assert len(queued) <= 512
    assert lane.queue_full >= 2000 - 512 - 512  # one batch may be in export
    assert beside.queue_full == 0
    release.set()
    output.shutdown()
    assert stuck.spans + lane.queue_full == 2000  # every span sent or counted
    assert fast.spans == beside.exporter.exported == 2000
    assert not [r for r in caplog.records if "Queue full" in r.getMessage()]


def test_a_replay_waits_for_a_slow_backend_and_sends_every_span() -> None:
    import time

    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    from armonik_observe.traces.output import Destination, SpanCounts, SpanOutput
    from armonik_observe.traces.plan import SpanPlan

    class Slow(SpanExporter):
        """A backend that takes its time over each batch."""

        def __init__(self) -> None:
            self.span_ids: list[int] = []

        def export(self, spans: Any) -> SpanExportResult:
            time.sleep(0.01)
            self.span_ids.extend(s.context.span_id for s in spans)
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            """Nothing to release."""

    slow = Slow()
    output = SpanOutput(Destination(file=Path("unused"), max_queue_size=600),
                        exporters={"file": slow}, wait_when_full=True)
    phase = SpanPlan("phase", 1, 1, None, 0, 1, {})
    for index in range(1000):  # a task span and two phases each: the queue fills many times
        output.write(SpanPlan("task", 1, 10 * index + 1, None, 0, 1, {},
                              phases=(phase, phase)))
    output.shutdown()
    assert len(slow.span_ids) == 3000
    assert output.counts() == {"file": SpanCounts(exported=3000, failed=0, unsampled=0)}


def test_a_replay_to_a_backend_too_slow_to_drain_counts_every_span() -> None:
    """Every span is counted, sent or not, however the flushes that make room end."""
    import time

    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    from armonik_observe.traces.output import Destination, SpanCounts, SpanOutput
    from armonik_observe.traces.plan import SpanPlan

    class Stuck(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            time.sleep(0.2)
            return SpanExportResult.FAILURE

        def shutdown(self) -> None:
            """Nothing to release."""

    output = SpanOutput(Destination(file=Path("unused"), max_queue_size=600),
                        exporters={"file": Stuck()}, wait_when_full=True)
    phase = SpanPlan("phase", 1, 1, None, 0, 1, {})
    for index in range(1000):
        output.write(SpanPlan("task", 1, 10 * index + 1, None, 0, 1, {}, phases=(phase, phase)))
    output.shutdown()
    assert output.counts() == {"file": SpanCounts(exported=0, failed=3000, unsampled=0)}


async def test_a_replay_to_a_backend_that_is_down_fails_in_one_line(tmp_path: Path) -> None:
    from test_archive_writer import fact, write
    from test_cli_serve import assert_one_line_error, run_cli

    from armonik_observe.fact_columns import TaskFacts
    from armonik_observe.pipeline import Batch

    directory = tmp_path / "archive"
    await write(directory, Batch(facts=TaskFacts.of([fact(1), fact(2)])))
    with socket.socket() as closed:  # a port that was free and is closed again: nobody answers
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = run_cli("traces", "--archive", str(directory), "--otlp-protocol", "http/protobuf",
                     "--otlp-endpoint", f"http://127.0.0.1:{port}")
    assert_one_line_error(result, "could not be sent")
    # A file beside the dead backend gets every span, and the error says so.
    path = tmp_path / "spans.jsonl"
    result = run_cli("traces", "--archive", str(directory), "--otlp-protocol", "http/protobuf",
                     "--otlp-endpoint", f"http://127.0.0.1:{port}", "--traces-file", str(path))
    spans = len(spans_of_otlp_json(path))
    assert spans >= 2 * 3  # each task, its phases, their sessions
    assert_one_line_error(result, f"{spans} spans could not be sent to http://127.0.0.1:{port} "
                                  f"(http/protobuf) (0 were): is the OTLP endpoint up? "
                                  f"(sent {spans} to {path})")


def test_the_traces_endpoint_variable_is_a_whole_url_and_a_base_gets_the_path() -> None:
    from armonik_observe.traces import HTTP
    from armonik_observe.traces.output import Destination

    destination = Destination(endpoint="http://127.0.0.1:1/tenant", protocol=HTTP)
    whole = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1/tenant"}
    base = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1/tenant"}
    # The SDK's exporter keeps its URL private: read it, as what it will post to.
    assert destination.exporters(environ=whole)["otlp"]._endpoint == "http://127.0.0.1:1/tenant"  # type: ignore[attr-defined]
    assert destination.exporters(environ=base)["otlp"]._endpoint == "http://127.0.0.1:1/tenant/v1/traces"  # type: ignore[attr-defined]


def spans_of_otlp_json(path: Path) -> set[tuple[Any, ...]]:
    """(name, trace, span, parent, start, end, links) of each span of an OTLP/JSON lines file,
    read as the specification writes ids: in hex."""
    spans = set()
    for line in path.read_text().splitlines():
        for resource in json.loads(line)["resourceSpans"]:
            for scope in resource["scopeSpans"]:
                for s in scope["spans"]:
                    links = tuple((int(k["traceId"], 16), int(k["spanId"], 16))
                                  for k in s.get("links", ()))
                    spans.add((s["name"], int(s["traceId"], 16), int(s["spanId"], 16),
                               int(s["parentSpanId"], 16) if "parentSpanId" in s else None,
                               int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"]), links))
    return spans


async def test_a_file_beside_the_endpoint_gets_the_same_spans(manual_sim: Any,
                                                              tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    async with manual_sim(MIXED) as (sim, _), grpc_receiver() as (endpoint, received):
        await traced_run(sim, endpoint, traces_file=path)
        sent = {(s.name, s.trace_id, s.span_id, s.parent_id, s.start_ns, s.end_ns,
                 tuple((trace, span) for trace, span, _ in s.links)) for s in received.spans}
        assert len(sent) > 200
        assert spans_of_otlp_json(path) == sent
