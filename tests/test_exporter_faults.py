"""Faults between the exporter and the control plane: no ended task lost or counted twice."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from exporter_harness import (
    FAST,
    ended_by_labels,
    exporter_for,
    sample,
    settle,
    settle_until,
)
from prometheus_client import CollectorRegistry

from armonik_observe.collectors import convert
from armonik_observe.collectors.retry import Backoff
from armonik_observe.config import ServeSettings
from armonik_observe.exporters.prometheus import PrometheusSink, SelfStatus
from armonik_observe.exporters.state_metrics import TASK_STATUSES
from armonik_observe.model import (
    TERMINAL_TASK_STATUSES,
    EventKind,
    HealthStatus,
    SessionEvent,
    StatusCounts,
    TaskStatus,
)
from armonik_observe.pipeline import Batch
from armonik_observe.service import Exporter
from armonik_observe.simulator.events import NEW_TASK, TASK_STATUS_UPDATE, EmittedEvent
from armonik_observe.simulator.faults import FaultPlan, RpcFaults
from armonik_observe.simulator.scenario import scenario_from_dict
from armonik_observe.simulator.server import Simulator

WORK = scenario_from_dict({
    "name": "work",
    "seed": 7,
    "partitions": [{"id": "cpu", "pods": 3}, {"id": "gpu", "pods": 2, "slots": 2}],
    "sessions": [
        {"name": "pricing", "partition": "cpu", "count": 2, "every": 4,
         "graph": {"kind": "bag", "tasks": 50}, "application": {"name": "pricing"},
         "profile": {"processing": {"kind": "exponential", "mean": 0.5},
                     "error_rate": 0.1, "timeout_rate": 0.02},
         "max_retries": 1, "max_duration": 3},
        {"name": "risk", "partition": "gpu", "start": 1,
         "graph": {"kind": "fanout", "tasks": 30}, "application": {"name": "risk"},
         "profile": {"processing": {"kind": "exponential", "mean": 1}}},
    ],
})

TERMINAL_NAMES = frozenset(status.name for status in TERMINAL_TASK_STATUSES)
HISTOGRAMS = (
    ("armonik_task_creation_to_end_seconds", "creation_to_end"),
    ("armonik_task_processing_to_end_seconds", "processing_to_end"),
    ("armonik_task_received_to_end_seconds", "received_to_end"),
)


async def run_to_end(sim: Simulator, exporter: Exporter) -> None:
    """Advance the simulator a second at a time until nothing is scheduled, letting the
    exporter poll and stream between steps."""
    while sim.scheduler.next_due() is not None:
        await sim.advance(1.0)
        await settle(exporter, 1)


def assert_ended_equal_the_truth(sim: Simulator, exporter: Exporter) -> None:
    tasks = sim.true_tasks()
    truth = ended_by_labels(tasks)
    assert sum(truth.values()) == len(tasks) > 100
    for (partition, app, status), count in truth.items():
        labels = {"partition": partition, "application": app, "status": status}
        assert sample(exporter, "armonik_tasks_ended_total", labels) == count, labels
        ended = [t for t in tasks
                 if (t.partition_id, t.options.application_name, t.status.name)
                 == (partition, app, status)]
        for metric, attribute in HISTOGRAMS:
            expected = sum(getattr(t, attribute) is not None for t in ended)
            assert sample(exporter, f"{metric}_count", labels) == expected, (metric, labels)
        waits = sum(t.submitted_at is not None and t.received_at is not None for t in ended)
        assert sample(exporter, "armonik_task_queue_wait_seconds_count", labels) == waits
    exported = sum(exporter.sink.facts.ended.values())
    assert exported == len(tasks)  # and no series beyond the truth's


def terminal_transitions(exporter: Exporter) -> Counter[str]:
    seen: Counter[str] = Counter()
    for family in exporter.registry.collect():
        if family.name == "armonik_task_status_transitions":
            for s in family.samples:
                if s.name.endswith("_total"):
                    seen[s.labels["status"]] += int(s.value)
    return Counter({k: v for k, v in seen.items() if k in TERMINAL_NAMES})


def surely_counted_ends(events: list[EmittedEvent]) -> Counter[str]:
    """Ends the streams delivered live for tasks they had shown in a non-final status: each
    of those must be counted (once), whatever else the faults did."""
    seen: set[tuple[int, str]] = set()  # (stream, task) shown in a non-final status
    ended: dict[str, str] = {}
    for event in events:
        if event.kind not in (NEW_TASK, TASK_STATUS_UPDATE):
            continue
        status = TaskStatus(event.status)
        if status not in TERMINAL_TASK_STATUSES:
            seen.add((event.stream_id, event.entity_id))
        elif event.kind == TASK_STATUS_UPDATE and (event.stream_id, event.entity_id) in seen:
            ended.setdefault(event.entity_id, status.name)
    return Counter(ended.values())


async def test_cut_duplicated_and_reordered_streams_lose_and_double_count_nothing(
    manual_sim: Any,
) -> None:
    plan = FaultPlan(cut_after=120, cut_rate=0.02, duplicates=0.05, reorder=0.05)
    async with manual_sim(WORK, faults=plan) as (sim, _), exporter_for(sim) as exporter:
        await settle(exporter, 1)
        await run_to_end(sim, exporter)
        await settle(exporter)
        assert_ended_equal_the_truth(sim, exporter)
        assert sample(exporter, "armonik_observe_stream_reconnects_total") > 0
        assert exporter.budget.dropped["duplicate"] > 0
        # The streams may miss ends while cut, but never count one twice, and never miss an
        # end delivered live for a task the stream had seen running.
        truth = Counter(t.status.name for t in sim.true_tasks())
        surely = surely_counted_ends(sim.emitted_events())
        counted = terminal_transitions(exporter)
        assert sum(surely.values()) > len(sim.true_tasks()) // 2
        for status in truth.keys() | counted.keys():
            assert surely[status] <= counted[status] <= truth[status], status


async def test_a_restart_mid_scenario_loses_no_end_and_turns_up_off_and_on(
    manual_sim: Any,
) -> None:
    async with manual_sim(WORK) as (sim, _), exporter_for(sim) as exporter:
        await settle(exporter, 1)
        await sim.advance(3)
        await settle(exporter)
        assert sample(exporter, "armonik_up") == 1
        ended_before = sum(ended_by_labels(sim.true_tasks()).values())
        async with sim.down():
            await sim.advance(5)  # tasks end while nobody can see them
            await settle(exporter)
            assert sample(exporter, "armonik_up") == 0
            assert sum(ended_by_labels(sim.true_tasks()).values()) > ended_before
        await run_to_end(sim, exporter)
        await settle_until(exporter, exporter.up)
        await settle(exporter)
        assert sample(exporter, "armonik_up") == 1
        assert_ended_equal_the_truth(sim, exporter)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@asynccontextmanager
async def exporter_at(endpoint: str) -> AsyncIterator[Exporter]:
    options: dict[str, Any] = {**FAST, "listen": "127.0.0.1:0"}
    settings = ServeSettings.build(endpoint=endpoint, **options)
    async with Exporter(settings, backoff=Backoff(initial=0.01, maximum=0.1)) as exporter:
        yield exporter


async def test_a_control_plane_down_at_start_leaves_the_exporter_up_and_retrying() -> None:
    async with exporter_at(f"http://127.0.0.1:{free_port()}") as exporter:
        await settle(exporter, 1)
        async with aiohttp.ClientSession() as http:
            async with http.get(exporter.http.url + "/health") as response:
                assert response.status == 503
                reasons = (await response.json())["reasons"]
            async with http.get(exporter.http.url + "/metrics") as response:
                assert response.status == 200
                assert "armonik_up 0.0" in await response.text()
        assert any("failed" in reason for reason in reasons)
        assert sample(exporter, "armonik_up") == 0
        polls = {poller.name: poller.polls for poller in exporter.pollers}
        await settle(exporter, 2)
        assert all(poller.polls >= polls[poller.name] + 2 for poller in exporter.pollers)
        assert all(poller.ok is False for poller in exporter.pollers)


async def test_failing_and_timing_out_rpcs_still_give_the_true_totals(manual_sim: Any) -> None:
    plan = FaultPlan(rpcs={"ListTasks": RpcFaults(unavailable=0.3),
                           "CountTasksByStatus": RpcFaults(deadline_exceeded=0.3)})
    async with manual_sim(WORK, faults=plan) as (sim, _), exporter_for(sim) as exporter:
        await settle(exporter, 1)
        await run_to_end(sim, exporter)
        await settle_until(exporter, lambda: exporter.facts.ok and exporter.counts.ok)
        assert_ended_equal_the_truth(sim, exporter)
        truth = Counter((t.partition_id, t.status.name) for t in sim.true_tasks())
        for partition in ("cpu", "gpu"):
            for status in TASK_STATUSES:
                labels = {"partition": partition, "status": status}
                assert sample(exporter, "armonik_tasks", labels) == truth[partition, status]
        failed = {"rpc": "ListTasks", "code": "UNAVAILABLE"}
        assert sample(exporter, "armonik_observe_rpc_duration_seconds_count", failed) > 0
        late = {"rpc": "CountTasksByStatus", "code": "DEADLINE_EXCEEDED"}
        assert sample(exporter, "armonik_observe_rpc_duration_seconds_count", late) > 0


async def test_a_degraded_service_shows_in_the_health_state_set(manual_sim: Any) -> None:
    plan = FaultPlan()
    async with manual_sim(faults=plan) as (sim, _), exporter_for(sim) as exporter:
        await settle(exporter)
        queue = {"service": "queue", "state": "HEALTHY"}
        assert sample(exporter, "armonik_service_health", queue) == 1
        plan.health["queue"] = HealthStatus.DEGRADED
        await settle(exporter)
        assert sample(exporter, "armonik_service_health", {**queue, "state": "DEGRADED"}) == 1
        assert sample(exporter, "armonik_service_health", queue) == 0
        database = {"service": "database", "state": "HEALTHY"}
        assert sample(exporter, "armonik_service_health", database) == 1


def test_an_unknown_status_number_is_named_and_exported() -> None:
    assert convert.task_status(14) == "UNKNOWN_14"
    assert convert.task_status(2) == "SUBMITTED"
    registry = CollectorRegistry()
    sink = PrometheusSink(registry=registry, up=lambda: True, self_status=SelfStatus,
                          version="test")
    counts = StatusCounts(0, "partition", "cpu", (("SUBMITTED", 3), ("UNKNOWN_14", 2)))
    sink.consume(Batch(counts=[counts]))
    assert registry.get_sample_value("armonik_tasks",
                                     {"partition": "cpu", "status": "UNKNOWN_14"}) == 2
    assert registry.get_sample_value("armonik_tasks",
                                     {"partition": "cpu", "status": "SUBMITTED"}) == 3
    assert registry.get_sample_value("armonik_tasks",
                                     {"partition": "cpu", "status": "COMPLETED"}) == 0
    assert registry.get_sample_value("armonik_up") == 1
    # The same name on a session's counts and on the event streams: nothing crashes.
    session = StatusCounts(0, "session", "s1", (("PROCESSING", 1), ("UNKNOWN_14", 4)))
    event = SessionEvent(0, "s1", EventKind.TASK_STATUS_UPDATE, task_id="t", status="UNKNOWN_14")
    sink.consume(Batch(counts=[counts, session], events=[event]))
    assert registry.get_sample_value("armonik_session_tasks",
                                     {"session": "s1", "status": "PROCESSING"}) == 1
    assert registry.get_sample_value("armonik_task_status_transitions_total",
                                     {"partition": "", "status": "UNKNOWN_14"}) == 1


FOLLOW = scenario_from_dict({
    "name": "follow",
    "partitions": [{"id": "default", "pods": 10}],
    "sessions": [
        {"name": "steady", "partition": "default", "count": 4, "every": 1,
         "graph": {"kind": "bag", "tasks": 2}, "profile": {"processing": 1000}},
        {"name": "closing", "partition": "default", "start": 4,
         "graph": {"kind": "bag", "tasks": 2}, "profile": {"processing": 1000},
         "lifecycle": [{"action": "close", "at": 5}]},
    ],
})


def session_series(exporter: Exporter) -> set[str]:
    return {
        s.labels["session"]
        for family in exporter.registry.collect() if family.name == "armonik_session_tasks"
        for s in family.samples
    }


async def test_only_the_newest_sessions_are_followed(manual_sim: Any) -> None:
    async with (
        manual_sim(FOLLOW) as (sim, _),
        exporter_for(sim, max_followed_sessions=2) as exporter,
    ):
        await sim.advance(5)
        await settle(exporter)
        ids = sim.workload.session_ids  # oldest first
        assert len(ids) == 5
        assert sample(exporter, "armonik_observe_followed_sessions") == 2
        assert sample(exporter, "armonik_observe_unfollowed_sessions") == 3
        assert session_series(exporter) == {ids[3], ids[4]}
        processing = {"session": ids[4], "status": "PROCESSING"}
        assert sample(exporter, "armonik_session_tasks", processing) == 2
        await sim.advance(5)  # the newest session closes
        await settle(exporter)
        assert session_series(exporter) == {ids[2], ids[3]}
        assert sample(exporter, "armonik_observe_followed_sessions") == 2
        assert sample(exporter, "armonik_observe_unfollowed_sessions") == 2
        assert set(exporter.streams.trackers) == {ids[2], ids[3]}


@pytest.mark.parametrize(("backfill", "clock_skew"), [(0.0, 0.0), (0.0, 3.0), (2.0, 1.5)])
async def test_ends_count_from_t0_minus_backfill_and_skew_exactly(
    manual_sim: Any, backfill: float, clock_skew: float,
) -> None:
    async with manual_sim(WORK) as (sim, _):
        await sim.advance(6.0)
        started_at = sim.clock.now_us()  # the exporter's T0, on the shared clock
        floor = started_at - int((backfill + clock_skew) * 1_000_000)
        async with exporter_for(sim, backfill=backfill, clock_skew=clock_skew) as exporter:
            await run_to_end(sim, exporter)
            await settle(exporter)
            assert exporter.facts.start_point() == floor
            ends = [t.ended_at for t in sim.true_tasks() if t.ended_at is not None]
            counted = sum(e >= floor for e in ends)
            assert 0 < counted < len(ends)  # the floor cuts the scenario
            assert sum(exporter.sink.facts.ended.values()) == counted
