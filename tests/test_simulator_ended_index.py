"""ListTasks by end date is served from the ended index with the same answer as a full scan."""

from __future__ import annotations

from typing import Any

from armonik.protogen.client.tasks_service_pb2_grpc import TasksStub
from armonik.protogen.common import tasks_common_pb2 as pb

from armonik_observe.collectors import requests
from armonik_observe.simulator.scenario import scenario_from_dict
from armonik_observe.simulator.services.tasks import _ended_since_by_end

BAGS = {
    "name": "bags",
    "partitions": [{"id": "default", "pods": 3}],
    "sessions": [
        {"name": "gone", "partition": "default", "graph": {"kind": "bag", "tasks": 30},
         "lifecycle": [{"action": "delete", "at": 30}]},
        {"name": "bag", "partition": "default", "count": 2, "every": 2,
         "graph": {"kind": "bag", "tasks": 40},
         "profile": {"processing": {"kind": "exponential", "mean": 0.5}}},
    ],
}


def test_only_the_exact_request_shape_takes_the_index() -> None:
    assert _ended_since_by_end(requests.list_tasks_ended_since(5, 0, 10)) == 5
    newest_first = requests.list_tasks_ended_since(5, 0, 10)
    newest_first.sort.direction = requests.DESC  # sorted descending: a full scan
    assert _ended_since_by_end(newest_first) is None
    with_session = requests.list_tasks_ended_since(5, 0, 10)
    and_branch = getattr(getattr(with_session.filters, "or")[0], "and")
    and_branch.append(requests.task_session_is("s"))
    assert _ended_since_by_end(with_session) is None


async def test_index_pages_equal_a_filtered_sorted_scan(manual_sim: Any) -> None:
    async with manual_sim(scenario_from_dict(BAGS)) as (sim, channel):
        await sim.run_until_idle()
        first_session = sim.workload.session_ids[0]
        tasks = sorted((t for t in sim.plane.tasks.values() if t.ended_at is not None),
                       key=lambda t: t.ended_at or 0)
        assert first_session not in {t.session_id for t in tasks}  # deleted sessions are gone
        since = tasks[len(tasks) // 3].ended_at or 0
        expected = [t.task_id for t in tasks if (t.ended_at or 0) >= since]
        stub, got, page = TasksStub(channel), [], 0
        while True:
            reply = await stub.ListTasks(requests.list_tasks_ended_since(since, page, 7))
            assert reply.total == len(expected)
            got += [t.id for t in reply.tasks]
            if len(reply.tasks) < 7:
                break
            page += 1
        assert got == expected
        reply = await stub.ListTasks(pb.ListTasksRequest(
            page=0, page_size=1, sort=requests.list_tasks_ended_since(0, 0, 1).sort))
        assert reply.total == len(sim.plane.tasks)
