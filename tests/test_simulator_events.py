"""GetEvents behaves as the real server's: snapshot, no timestamps, duplicates, never-ending."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from armonik.protogen.client.events_service_pb2_grpc import EventsStub
from armonik.protogen.common import events_common_pb2 as ev
from armonik.protogen.common import filters_common_pb2 as fpb
from armonik.protogen.common import tasks_fields_pb2 as tf
from armonik.protogen.common import tasks_filters_pb2 as tfl

from armonik_observe.model import TaskStatus
from armonik_observe.simulator.builtin import builtin_scenario
from armonik_observe.simulator.scenario import scenario_from_dict

BAG = {
    "name": "bag",
    "partitions": [{"id": "default", "pods": 2}],
    "sessions": [{"name": "bag", "partition": "default", "graph": {"kind": "bag", "tasks": 40},
                  "profile": {"processing": 1.0}}],
}


def subscribe(channel: grpc.aio.Channel, session_id: str, **kwargs: Any) -> Any:
    return EventsStub(channel).GetEvents(
        ev.EventSubscriptionRequest(session_id=session_id, **kwargs)
    )


async def read(call: Any, count: int) -> list[Any]:
    return [await call.read() for _ in range(count)]


async def test_event_messages_carry_no_timestamp() -> None:
    response = ev.EventSubscriptionResponse.DESCRIPTOR
    for oneof_field in response.oneofs_by_name["update"].fields:
        for field in oneof_field.message_type.fields:
            kind = field.message_type.full_name if field.message_type else ""
            assert "Timestamp" not in kind and not field.name.endswith("_at"), field.name


async def test_late_subscriber_gets_a_snapshot_with_current_statuses(manual_sim: Any) -> None:
    async with manual_sim(scenario_from_dict(BAG)) as (sim, channel):
        await sim.advance(5)
        (session_id,) = sim.workload.session_ids
        truth = {t.task_id: t.status for t in sim.plane.session_tasks(session_id)}
        results = sim.plane.session_results(session_id)
        call = subscribe(channel, session_id)
        snapshot = await read(call, len(truth) + len(results))
        tasks = {m.new_task.task_id: m.new_task.status for m in snapshot if m.HasField("new_task")}
        assert tasks == truth
        assert Counter(truth.values())[TaskStatus.COMPLETED] > 0  # a mix of statuses replayed
        assert {m.new_result.result_id for m in snapshot if m.HasField("new_result")} == {
            r.result_id for r in results
        }
        call.cancel()


async def drain(call: Any, quiet: float = 0.2) -> list[Any]:
    """Read until the stream stays quiet: it never ends by itself, so a quiet spell is the end.

    The last read is left pending rather than cancelled, since cancelling a read cancels the call.
    """
    messages = []
    while True:
        read_next = asyncio.ensure_future(call.read())
        done, _ = await asyncio.wait({read_next}, timeout=quiet)
        if not done:
            return messages
        messages.append(read_next.result())


async def read_until(call: Any, reached: Callable[[list[Any]], bool]) -> list[Any]:
    """Read until the messages so far satisfy `reached` (bounded), then drain what follows.

    A quiet spell alone is no end on a loaded machine: a pause mid-stream would end the read.
    """
    messages: list[Any] = []
    async with asyncio.timeout(30):
        while not reached(messages):
            messages.append(await call.read())
    return messages + await drain(call)


def latest_statuses(messages: list[Any]) -> dict[str, int]:
    """Each task's last status among new_task and task_status_update messages."""
    latest: dict[str, int] = {}
    for message in messages:
        kind = message.WhichOneof("update")
        assert kind in ("new_task", "task_status_update")
        update = getattr(message, kind)
        latest[update.task_id] = update.status
    return latest


async def test_live_updates_follow_every_task_to_its_end(manual_sim: Any) -> None:
    async with manual_sim(scenario_from_dict(BAG)) as (sim, channel):
        await sim.advance(0.0001)
        (session_id,) = sim.workload.session_ids
        call = subscribe(channel, session_id,
                         returned_events=[ev.EVENTS_ENUM_NEW_TASK,
                                          ev.EVENTS_ENUM_TASK_STATUS_UPDATE])
        messages = [await call.read()]  # subscribed: the snapshot has started
        await sim.run_until_idle()
        truth = {t.task_id: t.status for t in sim.true_tasks()}
        messages += await read_until(call, lambda more: latest_statuses(messages + more) == truth)
        latest = latest_statuses(messages)
        assert latest == truth
        assert set(latest.values()) == {TaskStatus.COMPLETED}
        assert not call.done()  # the session is over, the stream is not
        call.cancel()


async def test_changes_during_the_snapshot_arrive_again(manual_sim: Any) -> None:
    async with manual_sim(scenario_from_dict(BAG)) as (sim, channel):
        await sim.advance(0.0001)
        (session_id,) = sim.workload.session_ids
        task_ids = [t.task_id for t in sim.plane.session_tasks(session_id)]
        call = subscribe(channel, session_id, returned_events=[ev.EVENTS_ENUM_NEW_TASK,
                                                               ev.EVENTS_ENUM_TASK_STATUS_UPDATE])
        first = await call.read()
        await sim.advance(30)  # every task moves on while the snapshot is being sent
        seen = Counter([first.new_task.task_id])
        for message in await read(call, 3 * len(task_ids)):
            update = message.new_task if message.HasField("new_task") else \
                message.task_status_update
            seen[update.task_id] += 1
        assert set(seen) == set(task_ids)
        assert all(count >= 2 for count in seen.values())  # at least once, and more
        call.cancel()


async def test_result_and_task_events_interleave_in_no_fixed_order(manual_sim: Any) -> None:
    async with manual_sim(scenario_from_dict(BAG)) as (sim, channel):
        await sim.advance(0.0001)
        (session_id,) = sim.workload.session_ids
        call = subscribe(channel, session_id)
        snapshot_size = len(sim.plane.session_tasks(session_id)) + len(
            sim.plane.session_results(session_id))
        await read(call, snapshot_size)
        await sim.run_until_idle()
        kinds = [m.WhichOneof("update") for m in await read(call, 200)]
        switches = sum(1 for a, b in itertools.pairwise(kinds) if a != b)
        assert {"task_status_update", "result_status_update"} <= set(kinds)
        assert switches > 20  # merged from two sources, not one block after the other
        call.cancel()


@pytest.mark.parametrize(
    ("field", "condition"),
    [
        (tf.TASK_SUMMARY_ENUM_FIELD_STATUS,
         {"filter_status": tfl.FilterStatus(value=4)}),
        (tf.TASK_SUMMARY_ENUM_FIELD_CREATED_AT, {"filter_date": fpb.FilterDate()}),
        (tf.TASK_SUMMARY_ENUM_FIELD_CREATION_TO_END_DURATION,
         {"filter_duration": fpb.FilterDuration()}),
    ],
)
async def test_event_filters_on_status_dates_and_durations_are_rejected(
    manual_sim: Any, field: int, condition: dict[str, Any]
) -> None:
    async with manual_sim(scenario_from_dict(BAG)) as (sim, channel):
        await sim.advance(0.0001)
        (session_id,) = sim.workload.session_ids
        filter_field = tfl.FilterField(
            field=tf.TaskField(task_summary_field=tf.TaskSummaryField(field=field)), **condition
        )
        filters = tfl.Filters(**{"or": [tfl.FiltersAnd(**{"and": [filter_field]})]})
        call = subscribe(channel, session_id, tasks_filters=filters)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call.read()
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_task_id_filter_restricts_the_stream(manual_sim: Any) -> None:
    async with manual_sim(scenario_from_dict(BAG)) as (sim, channel):
        await sim.advance(0.0001)
        (session_id,) = sim.workload.session_ids
        target = sim.plane.session_tasks(session_id)[3].task_id
        filter_field = tfl.FilterField(
            field=tf.TaskField(task_summary_field=tf.TaskSummaryField(
                field=tf.TASK_SUMMARY_ENUM_FIELD_TASK_ID)),
            filter_string=fpb.FilterString(value=target),
        )
        filters = tfl.Filters(**{"or": [tfl.FiltersAnd(**{"and": [filter_field]})]})
        call = subscribe(channel, session_id, tasks_filters=filters,
                         returned_events=[ev.EVENTS_ENUM_NEW_TASK,
                                          ev.EVENTS_ENUM_TASK_STATUS_UPDATE])
        messages = [await call.read()]
        await sim.run_until_idle()
        messages += await read_until(call, lambda more: any(
            m.task_status_update.status == TaskStatus.COMPLETED for m in more))
        ids = {(m.new_task.task_id or m.task_status_update.task_id) for m in messages}
        assert ids == {target}
        assert messages[-1].task_status_update.status == TaskStatus.COMPLETED
        call.cancel()


async def test_unknown_session_is_not_found(manual_sim: Any) -> None:
    async with manual_sim(builtin_scenario("demo")) as (_, channel):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await subscribe(channel, "no-such-session").read()
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
