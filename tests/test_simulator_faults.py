"""Fault injection: failing RPCs, cut streams, messy delivery, bad health and restarts."""

from __future__ import annotations

import time
from typing import Any

import grpc
import pytest
from armonik.protogen.client.events_service_pb2_grpc import EventsStub
from armonik.protogen.client.health_checks_service_pb2_grpc import HealthChecksServiceStub
from armonik.protogen.client.sessions_service_pb2_grpc import SessionsStub
from armonik.protogen.common import events_common_pb2 as ev
from armonik.protogen.common import health_checks_common_pb2 as hc
from armonik.protogen.common import sessions_common_pb2 as sc

from armonik_observe.model import HealthStatus
from armonik_observe.simulator.faults import FaultPlan, FaultSpecError, RpcFaults, parse_faults
from armonik_observe.simulator.scenario import scenario_from_dict

BAG = {
    "name": "bag",
    "partitions": [{"id": "default", "pods": 2}],
    "sessions": [{"name": "bag", "partition": "default", "graph": {"kind": "bag", "tasks": 30}}],
}


def test_a_fault_specification_parses_into_a_plan() -> None:
    plan = parse_faults(
        "cut-after=500,unavailable=0.1@ListTasks,deadline=0.05,latency=20ms,duplicates=0.01,"
        "reorder=0.02,health=degraded@queue,restart=30/5"
    )
    assert plan.cut_after == 500
    assert plan.for_rpc("ListTasks").unavailable == 0.1
    assert plan.for_rpc("GetSession").deadline_exceeded == 0.05
    assert plan.for_rpc("GetSession").latency_s == pytest.approx(0.02)
    assert (plan.duplicates, plan.reorder) == (0.01, 0.02)
    assert plan.health == {"queue": HealthStatus.DEGRADED}
    assert (plan.restart_at_s, plan.restart_down_s) == (30, 5)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("unavailable=2", "not a probability"),
        ("cut-after=x", "not a positive count"),
        ("latency=fast", "not a duration"),
        ("health=sick", "healthy, degraded or unhealthy"),
        ("explode=1", "unknown fault 'explode'"),
        ("cut-after", "expected name=value"),
    ],
)
def test_a_bad_fault_specification_names_the_problem(spec: str, message: str) -> None:
    with pytest.raises(FaultSpecError, match=message):
        parse_faults(spec)


def list_sessions_request() -> Any:
    return sc.ListSessionsRequest(page=0, page_size=10, sort=sc.ListSessionsRequest.Sort())


async def test_unavailable_and_deadline_faults_fail_the_chosen_rpc(manual_sim: Any) -> None:
    plan = FaultPlan(rpcs={"ListSessions": RpcFaults(unavailable=1.0)})
    async with manual_sim(faults=plan) as (_, channel):
        stub = SessionsStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.ListSessions(list_sessions_request())
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        await HealthChecksServiceStub(channel).CheckHealth(hc.CheckHealthRequest())  # unaffected
        plan.rpcs["ListSessions"] = RpcFaults(deadline_exceeded=1.0)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.ListSessions(list_sessions_request())
        assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_a_fraction_of_calls_fails(manual_sim: Any) -> None:
    plan = FaultPlan(rpcs={"*": RpcFaults(unavailable=0.5)})
    async with manual_sim(faults=plan) as (_, channel):
        stub = HealthChecksServiceStub(channel)
        failures = 0
        for _ in range(200):
            try:
                await stub.CheckHealth(hc.CheckHealthRequest())
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.UNAVAILABLE
                failures += 1
        assert 60 < failures < 140


async def test_latency_delays_calls(manual_sim: Any) -> None:
    plan = FaultPlan(rpcs={"CheckHealth": RpcFaults(latency_s=0.1)})
    async with manual_sim(faults=plan) as (_, channel):
        began = time.monotonic()
        await HealthChecksServiceStub(channel).CheckHealth(hc.CheckHealthRequest())
        assert time.monotonic() - began >= 0.1


async def test_health_reports_the_three_services_as_the_plan_says(manual_sim: Any) -> None:
    plan = FaultPlan()
    async with manual_sim(faults=plan) as (_, channel):
        stub = HealthChecksServiceStub(channel)
        healthy = await stub.CheckHealth(hc.CheckHealthRequest())
        assert {(s.name, s.healthy) for s in healthy.services} == {
            ("database", 1), ("object", 1), ("queue", 1)}
        plan.health.update(queue=HealthStatus.UNHEALTHY, object=HealthStatus.DEGRADED)
        degraded = {s.name: s for s in (await stub.CheckHealth(hc.CheckHealthRequest())).services}
        assert degraded["queue"].healthy == HealthStatus.UNHEALTHY
        assert degraded["object"].healthy == HealthStatus.DEGRADED
        assert "queue" in degraded["queue"].message


async def test_streams_are_cut_after_n_events(manual_sim: Any) -> None:
    async with manual_sim(scenario_from_dict(BAG), faults=FaultPlan(cut_after=7)) as (sim, ch):
        await sim.advance(1)
        (session_id,) = sim.workload.session_ids
        call = EventsStub(ch).GetEvents(ev.EventSubscriptionRequest(session_id=session_id))
        received = [await call.read() for _ in range(7)]
        assert len(received) == 7
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call.read()
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_duplicates_fault_sends_every_event_twice(manual_sim: Any) -> None:
    async with manual_sim(scenario_from_dict(BAG), faults=FaultPlan(duplicates=1.0)) as (sim, ch):
        await sim.advance(1)
        (session_id,) = sim.workload.session_ids
        call = EventsStub(ch).GetEvents(ev.EventSubscriptionRequest(
            session_id=session_id, returned_events=[ev.EVENTS_ENUM_NEW_TASK]))
        messages = [await call.read() for _ in range(10)]
        assert [m.new_task.task_id for m in messages[::2]] == \
            [m.new_task.task_id for m in messages[1::2]]
        call.cancel()


async def test_a_restart_cuts_streams_refuses_calls_and_keeps_state(manual_sim: Any) -> None:
    async with manual_sim(scenario_from_dict(BAG)) as (sim, channel):
        await sim.advance(2)
        (session_id,) = sim.workload.session_ids
        call = EventsStub(channel).GetEvents(ev.EventSubscriptionRequest(session_id=session_id))
        await call.read()
        before = {t.task_id: t.status for t in sim.true_tasks()}
        stub = SessionsStub(channel)
        async with sim.down():
            with pytest.raises(grpc.aio.AioRpcError) as error:
                while True:  # the snapshot still buffered may arrive first
                    await call.read()
            # UNAVAILABLE from the stream's own goodbye, or CANCELLED if the server's stop won
            assert error.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await stub.GetSession(sc.GetSessionRequest(session_id=session_id), timeout=2)
            assert error.value.code() in (grpc.StatusCode.UNAVAILABLE,
                                          grpc.StatusCode.DEADLINE_EXCEEDED)
        reply = await stub.GetSession(sc.GetSessionRequest(session_id=session_id),
                                      wait_for_ready=True, timeout=10)
        assert reply.session.session_id == session_id
        assert {t.task_id: t.status for t in sim.true_tasks()} == before


async def test_a_planned_restart_takes_the_server_down_then_back() -> None:
    from armonik_observe.simulator.server import Simulator

    # Wall-clock fault by design: 2 s leave the first call ample time even on a loaded machine.
    plan = FaultPlan(restart_at_s=2.0, restart_down_s=0.3)
    async with Simulator(faults=plan) as sim, grpc.aio.insecure_channel(sim.target) as channel:
        stub = HealthChecksServiceStub(channel)
        request = hc.CheckHealthRequest()
        assert len((await stub.CheckHealth(request)).services) == 3
        failure = None
        for _ in range(100_000):  # bounded: the outage begins 2 s after start
            try:
                # a deadline well above a loaded machine's pauses: calls in the outage fail fast
                await stub.CheckHealth(request, timeout=5)
            except grpc.aio.AioRpcError as error:
                failure = error.code()
                break
        # A call in flight when the server stops is cancelled by its GOAWAY; later ones find
        # nobody listening. Both are what a restarting control plane does to a client.
        assert failure in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
        back = await stub.CheckHealth(request, wait_for_ready=True, timeout=10)
        assert len(back.services) == 3
