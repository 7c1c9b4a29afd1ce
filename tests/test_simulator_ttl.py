"""Retention: the simulator forgets ended tasks, their results, then their sessions after its TTL.

What expires is answered as a real server answers for an id it never knew (NOT_FOUND, absent
from lists); what has not ended never expires; a never-ending scenario holds a bounded state.
"""

from __future__ import annotations

import gc
import re
import tracemalloc
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from armonik.client import ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import Result, Task
from armonik.protogen.client.results_service_pb2_grpc import ResultsStub
from armonik.protogen.client.sessions_service_pb2_grpc import SessionsStub
from armonik.protogen.client.tasks_service_pb2_grpc import TasksStub
from armonik.protogen.common import results_common_pb2 as rpb
from armonik.protogen.common import results_fields_pb2 as rfields
from armonik.protogen.common import sessions_common_pb2 as spb
from armonik.protogen.common import sessions_fields_pb2 as sfields
from armonik.protogen.common import tasks_common_pb2 as tpb
from conftest import START_US
from exporter_harness import ended_by_labels, exporter_for, sample, settle, wait_until
from test_cli_simulate import assert_one_line_error, run_cli

from armonik_observe.collectors import requests
from armonik_observe.config import DEMO_DEFAULTS, SettingsError, SimulatorSettings
from armonik_observe.exporters.state_metrics import TASK_STATUSES
from armonik_observe.runner import build_simulator
from armonik_observe.simulator.builtin import builtin_scenario
from armonik_observe.simulator.clock import MICROS, ManualClock
from armonik_observe.simulator.embedded import SimulatorThread
from armonik_observe.simulator.expiry import named_results
from armonik_observe.simulator.records import SimTask
from armonik_observe.simulator.scenario import scenario_from_dict
from armonik_observe.simulator.server import Simulator

TTL = 10.0
TTL_US = int(TTL * MICROS)
# Two pods for 30 one-second-ish tasks: tasks expire while others still run. The "open" session
# is never closed: it stays once its tasks are gone, since its client may still submit.
BAG = {
    "name": "ttl",
    "seed": 4,
    "partitions": [{"id": "default", "pods": 2}],
    "sessions": [
        {"name": "bag", "partition": "default", "graph": {"kind": "bag", "tasks": 30},
         "profile": {"processing": {"kind": "exponential", "mean": 1.0}}},
        {"name": "open", "partition": "default", "close_when_done": False,
         "graph": {"kind": "bag", "tasks": 3}},
    ],
}
# Inputs, subtasks, retries, a cancelled chain and a deleted session.
GRAPHS = {
    "name": "graphs",
    "seed": 9,
    "partitions": [{"id": "default", "pods": 4, "slots": 2}],
    "sessions": [
        {"name": "fanout", "partition": "default", "graph": {"kind": "fanout", "tasks": 20}},
        {"name": "chain", "partition": "default", "graph": {"kind": "chain", "tasks": 15}},
        {"name": "cut", "partition": "default", "close_when_done": False,
         "graph": {"kind": "chain", "tasks": 30}, "profile": {"processing": 0.5},
         "lifecycle": [{"action": "cancel", "at": 4}]},
        {"name": "subtasks", "partition": "default", "graph": {"kind": "subtasking", "tasks": 4},
         "max_retries": 2,
         "profile": {"processing": 0.5, "subtask_depth": 2, "subtask_children": 2,
                     "error_rate": 0.2}},
        {"name": "gone", "partition": "default", "start": 2, "close_when_done": False,
         "graph": {"kind": "bag", "tasks": 20}, "profile": {"processing": 1.0},
         "lifecycle": [{"action": "cancel", "at": 3}, {"action": "delete", "at": 6}]},
    ],
}
LIST_TASKS = tpb.ListTasksRequest(page=0, page_size=1000,
                                  sort=requests.list_tasks_ended_since(0, 0, 1).sort)
LIST_RESULTS = rpb.ListResultsRequest(page=0, page_size=1000, sort=rpb.ListResultsRequest.Sort(
    field=rfields.ResultField(result_raw_field=rfields.ResultRawField(
        field=rfields.RESULT_RAW_ENUM_FIELD_CREATED_AT))))
LIST_SESSIONS = spb.ListSessionsRequest(page=0, page_size=100, sort=spb.ListSessionsRequest.Sort(
    field=sfields.SessionField(session_raw_field=sfields.SessionRawField(
        field=sfields.SESSION_RAW_ENUM_FIELD_CREATED_AT))))


def held(tasks: list[SimTask], now_us: int, ttl_us: int = TTL_US) -> list[SimTask]:
    """The tasks a plane with this TTL still holds at `now_us`."""
    return [t for t in tasks if t.ended_at is None or t.ended_at + ttl_us > now_us]


async def not_found(call: Any) -> bool:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code() == grpc.StatusCode.NOT_FOUND
    return False


async def test_tasks_and_results_go_exactly_at_their_end_plus_the_ttl(manual_sim: Any) -> None:
    async with manual_sim(scenario_from_dict(BAG), ttl=TTL) as (sim, channel):
        tasks_stub, results_stub = TasksStub(channel), ResultsStub(channel)
        sessions_stub = SessionsStub(channel)
        await sim.advance(0.5)
        every = list(sim.plane.tasks.values())
        bag, still_open = sim.workload.session_ids
        assert len(every) == 33
        checked = 0  # tasks checked, in the order they end
        while checked < len(every):
            ended = sorted((t for t in every if t.ended_at is not None),
                           key=lambda t: t.ended_at or 0)
            if len(ended) <= checked:
                await sim.advance(0.5)
                continue
            task = ended[checked]
            due = (task.ended_at or 0) + TTL_US
            if sim.clock.now_us() < due - 1:
                await sim.advance_to(due - 1)
                assert (await tasks_stub.GetTask(tpb.GetTaskRequest(task_id=task.task_id))
                        ).task.id == task.task_id
                await assert_lists_hold(sim, channel, every)
            await sim.advance_to(due)
            assert await not_found(tasks_stub.GetTask(tpb.GetTaskRequest(task_id=task.task_id)))
            for result_id in named_results(task):
                assert await not_found(results_stub.GetResult(
                    rpb.GetResultRequest(result_id=result_id)))
            await assert_lists_hold(sim, channel, every)
            checked += 1
        assert sim.plane.expired_tasks == 33 and not sim.plane.tasks and not sim.plane.results
        # The closed session went with its last task; the open one stays, empty.
        assert await not_found(sessions_stub.GetSession(spb.GetSessionRequest(session_id=bag)))
        sessions = (await sessions_stub.ListSessions(LIST_SESSIONS)).sessions
        assert [s.session_id for s in sessions] == [still_open]
        assert sim.plane.expired_sessions == 1


async def assert_lists_hold(sim: Simulator, channel: grpc.aio.Channel,
                            every: list[SimTask]) -> None:
    """ListTasks and ListResults answer exactly what is held; unfinished tasks always are."""
    now = sim.clock.now_us()
    kept = held(every, now)
    reply = await TasksStub(channel).ListTasks(LIST_TASKS)
    assert sorted(t.id for t in reply.tasks) == sorted(t.task_id for t in kept)
    assert reply.total == len(kept) == len(sim.true_tasks())
    assert {t.task_id for t in every if t.ended_at is None} <= {t.id for t in reply.tasks}
    results = (await ResultsStub(channel).ListResults(LIST_RESULTS)).results
    assert {r.result_id for r in results} == {r for t in kept for r in named_results(t)}


async def test_the_ended_index_and_deleted_sessions_follow_expiry(manual_sim: Any) -> None:
    async with manual_sim(scenario_from_dict(GRAPHS), ttl=TTL) as (sim, channel):
        stub, seen, deletions = TasksStub(channel), dict[str, SimTask](), 0
        while sim.scheduler.next_due() is not None or sim.true_tasks():
            await sim.advance(1.0)
            seen.update((t.task_id, t) for t in sim.true_tasks())
            kept = held(list(seen.values()), sim.clock.now_us())
            deleted = set(sim.plane.deleted_tasks)
            assert set(sim.plane.tasks) | deleted == {t.task_id for t in kept}
            assert {seen[t].session_id for t in deleted} <= {sim.workload.session_ids[-1]}
            deletions += bool(deleted)
            await assert_ended_pages(stub, [t for t in kept if t.ended_at is not None
                                            and t.task_id not in deleted])
        assert deletions > 0
        plane = sim.plane
        assert not plane.deleted_tasks and not plane.tasks and not plane.results
        assert len(plane.ended) == 0 and plane.expired_tasks == len(seen)
        # Closed, cancelled ("cut") and deleted ("gone") sessions all went with their tasks.
        assert not plane.sessions and plane.expired_sessions == 5


async def assert_ended_pages(stub: TasksStub, ended: list[SimTask]) -> None:
    """The exporter's facts query (ended since, by end) pages through exactly `ended`."""
    everything = await stub.ListTasks(requests.list_tasks_ended_since(0, 0, 1))
    assert everything.total == len(ended)
    if not ended:
        return
    ended.sort(key=lambda t: t.ended_at or 0)
    since = ended[len(ended) // 3].ended_at or 0
    expected = [t.task_id for t in ended if (t.ended_at or 0) >= since]
    got, page = [], 0
    while True:
        reply = await stub.ListTasks(requests.list_tasks_ended_since(since, page, 7))
        assert reply.total == len(expected)
        got += [t.id for t in reply.tasks]
        if len(reply.tasks) < 7:
            break
        page += 1
    # Each once, in order of end (ties in the plane's own order, which the query keeps).
    assert sorted(got) == sorted(expected) and len(set(got)) == len(got)
    ends = {t.task_id: t.ended_at or 0 for t in ended}
    assert [ends[task] for task in got] == sorted(ends[task] for task in got)


async def test_expiry_changes_only_what_is_held(manual_sim: Any) -> None:
    """Same scenario, short and default TTL: every task lives the same life, and the
    dependency bookkeeping is empty once everything has ended."""
    lives = []
    for ttl in (2.0, None):
        options = {} if ttl is None else {"ttl": ttl}
        async with manual_sim(scenario_from_dict(GRAPHS), **options) as (sim, _):
            seen: dict[str, SimTask] = {}
            while sim.scheduler.next_due() is not None:
                await sim.advance(1.0)
                seen.update((t.task_id, t) for t in sim.true_tasks())
            lives.append({task_id: (t.history, t.created_at, t.ended_at, t.retry_of_ids)
                          for task_id, t in seen.items()})
            plane = sim.plane
            assert not plane._waiting and not plane._missing and not plane._children
            if ttl is not None:
                assert plane.expired_tasks > 0
    assert lives[0] == lives[1]
    assert len(lives[0]) > 100


async def test_a_never_ending_scenario_holds_a_bounded_state() -> None:
    rate, ttl = 100.0, 5.0
    sim = Simulator(builtin_scenario("steady"), clock=ManualClock(START_US), rate=rate, ttl=ttl,
                    record_events=False)
    async with sim:
        await sim.advance(3 * ttl)  # warm-up: expiry has started
        tracemalloc.start()
        try:
            await sim.advance(3 * ttl)  # every record held now was allocated while tracing
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            played = sim.plane.expired_tasks + len(sim.plane.tasks)
            for _ in range(20):
                await sim.advance(10.0)
                assert_bounded(sim, rate, ttl)
            gc.collect()
            growth = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        played = sim.plane.expired_tasks + len(sim.plane.tasks) - played
        assert played > 15_000
        # A task kept for ever costs about 1.6 kB: the growth is a small fraction of one byte
        # per task played, whatever the simulated time.
        assert growth < 16 * played, (growth, played)


def assert_bounded(sim: Simulator, rate: float, ttl: float) -> None:
    plane, now = sim.plane, sim.clock.now_us()
    horizon = now - int(ttl * MICROS)
    assert all(t.ended_at is None or t.ended_at > horizon for t in plane.tasks.values())
    assert len(plane.tasks) < 2 * rate * ttl
    assert len(plane.results) == 2 * len(plane.tasks)
    assert len(plane.ended) == sum(t.ended_at is not None for t in plane.tasks.values())
    (state,) = plane.sessions.values()
    assert len(state.tasks) == len(plane.tasks) and len(state.results) == len(plane.results)
    assert len(sim.scheduler) < len(plane.tasks)
    assert not plane._waiting and not plane._missing and not plane._children


async def test_the_exporter_counts_every_end_while_tasks_expire(manual_sim: Any) -> None:
    async with (
        manual_sim(scenario_from_dict(GRAPHS), ttl=TTL) as (sim, _),
        exporter_for(sim) as exporter,
    ):
        await settle(exporter, 1)
        seen: dict[str, SimTask] = {}
        while sim.true_tasks() or sim.scheduler.next_due() is not None:
            await sim.advance(1.0)
            seen.update((t.task_id, t) for t in sim.true_tasks())
            await settle(exporter, 1)
        await settle(exporter)
        truth = ended_by_labels(list(seen.values()))
        assert sum(truth.values()) == len(seen) == sim.plane.expired_tasks > 100
        for (partition, app, status), count in truth.items():
            labels = {"partition": partition, "application": app, "status": status}
            assert sample(exporter, "armonik_tasks_ended_total", labels) == count
        # The plane holds nothing now: its counts say so.
        for status in TASK_STATUSES:
            assert sample(exporter, "armonik_tasks", {"partition": "default",
                                                      "status": status}) == 0


@pytest.fixture
def threaded() -> Iterator[SimulatorThread]:
    thread = SimulatorThread(lambda: Simulator(scenario_from_dict(BAG), ttl=TTL,
                                               clock=ManualClock(START_US)))
    with thread:
        yield thread


def test_the_official_clients_see_expired_records_as_unknown(threaded: SimulatorThread) -> None:
    sim = threaded.simulator
    assert sim is not None
    threaded.call(sim.advance(3.0))
    with grpc.insecure_channel(sim.target) as channel:
        tasks, results = ArmoniKTasks(channel), ArmoniKResults(channel)
        sessions = ArmoniKSessions(channel)
        bag = threaded.run(lambda s: s.workload.session_ids[0])
        first = threaded.run(lambda s: min((t for t in s.plane.tasks.values()
                                            if t.session_id == bag and t.ended_at),
                                           key=lambda t: t.ended_at or 0))
        assert tasks.get_task(first.task_id).id == first.task_id
        total_before, _ = tasks.list_tasks(Task.session_id == bag)
        threaded.call(sim.advance_to((first.ended_at or 0) + TTL_US))
        assert_not_found(lambda: tasks.get_task(first.task_id))
        assert_not_found(lambda: results.get_result(first.payload_id))
        total, listed = tasks.list_tasks(Task.session_id == bag, page_size=100)
        assert first.task_id not in {t.id for t in listed}
        assert total == threaded.run(
            lambda s: sum(t.session_id == bag for t in s.plane.tasks.values())) < total_before
        _, kept = results.list_results(Result.session_id == bag, page_size=200)
        assert first.payload_id not in {r.result_id for r in kept}
        threaded.call(sim.advance(60.0))
        assert_not_found(lambda: sessions.get_session(bag))
        _, listed_sessions = sessions.list_sessions()
        assert bag not in {s.session_id for s in listed_sessions}
        assert tasks.list_tasks(Task.session_id == bag)[0] == 0


def assert_not_found(call: Any) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


# ------------------------------------------------------------------------------------ --ttl


@pytest.mark.parametrize(("value", "seconds"), [("60s", 60), ("600", 600), ("0.5", 0.5),
                                                ("10d", 864_000), ("2h", 7200)])
def test_ttl_takes_seconds_or_a_duration(value: str, seconds: float) -> None:
    settings = SimulatorSettings.build(scenario="steady", faults="", ttl=value)
    assert settings.ttl == timedelta(seconds=seconds)
    assert build_simulator(settings).plane.ttl_us == seconds * MICROS


def test_the_default_ttl_is_a_real_planes_and_the_demo_is_shorter() -> None:
    assert SimulatorSettings.build(scenario="demo", faults="").ttl == timedelta(days=10)
    demo = SimulatorSettings.build(scenario="demo", faults="", ttl=DEMO_DEFAULTS["ttl"])
    assert demo.ttl == timedelta(minutes=10)


@pytest.mark.parametrize("value", ["0", "-5s", "ten", "10x", "", "nan", "99999999999d"])
def test_a_bad_ttl_is_refused(value: str) -> None:
    message = f"--ttl: expected positive seconds or a duration like 60s or 10d, got '{value}'"
    with pytest.raises(SettingsError, match=re.escape(message)):
        SimulatorSettings.build(scenario="demo", faults="", ttl=value)


@pytest.mark.parametrize("command", ["simulate", "demo"])
def test_a_bad_ttl_gives_one_line_and_exit_2(command: str) -> None:
    assert_one_line_error(run_cli(command, "--ttl", "soon", "--listen", "127.0.0.1:0"),
                          "--ttl", "'soon'")


async def test_a_real_time_plane_expires_after_its_scenario_is_over() -> None:
    """Upkeep wakes the real-time driver even when the scenario has nothing left to do."""
    # Longer than the scenario: every expiry is due after its last action.
    sim = Simulator(scenario_from_dict(BAG), speed=50.0, ttl=30.0)
    async with sim:
        await wait_until(lambda: sim.plane.expired_tasks == 33, within=30)
        assert not sim.plane.tasks and len(sim.plane.sessions) == 1
