"""Stuck tasks against the simulator's truth: max_duration bounds a task a worker holds, never
its wait in the queue (a backlog is no fault); queued tasks are stuck after --stuck-threshold.
"""

from __future__ import annotations

import math
from typing import Any

from exporter_harness import exporter_for, sample, settle_until
from test_archive_truth import advance

from armonik_observe.model import TaskStatus
from armonik_observe.service import STUCK_REFRESH_S
from armonik_observe.simulator.scenario import scenario_from_dict
from armonik_observe.simulator.server import Simulator

MAX_DURATION_S = 8
# One pod; each task sits 60 s in DISPATCHED (a slow fetch), the others queue behind it.
BACKLOG = scenario_from_dict({
    "name": "backlog", "seed": 1, "partitions": [{"id": "cpu", "pods": 1}],
    "sessions": [{"name": "s", "partition": "cpu", "graph": {"kind": "bag", "tasks": 10},
                  "max_duration": MAX_DURATION_S,
                  "profile": {"fetch": 60, "processing": 1}}],
})


def true_stuck(sim: Simulator, status: TaskStatus, limit_s: float) -> int:
    """Tasks in `status` since more than `limit_s` seconds, by the simulator's records."""
    now = sim.clock.now_us()
    since = {TaskStatus.SUBMITTED: "submitted_at", TaskStatus.DISPATCHED: "acquired_at",
             TaskStatus.PROCESSING: "started_at"}[status]
    return sum(1 for task in sim.true_tasks() if task.status == status
               and now - getattr(task, since) > limit_s * 1_000_000)


def stuck(exporter: Any, status: TaskStatus) -> float:
    """The exposed count, recounted now: the exporter keeps a count for 10 s of its clock, the
    simulator's frozen one here, so a read before the stream caught up would stick for good."""
    exporter._stuck = (-math.inf, {})
    return sample(exporter, "armonik_tasks_stuck", {"partition": "cpu", "status": status.name})


async def test_a_backlog_is_not_stuck_but_a_task_held_past_max_duration_is(manual_sim: Any) -> None:
    async with manual_sim(BACKLOG) as (sim, _), exporter_for(sim) as exporter:
        await advance(sim, exporter, 2 * STUCK_REFRESH_S + 2)
        assert true_stuck(sim, TaskStatus.SUBMITTED, MAX_DURATION_S) >= 8  # queued long
        want = true_stuck(sim, TaskStatus.DISPATCHED, MAX_DURATION_S)
        assert want == 1
        await settle_until(exporter, lambda: stuck(exporter, TaskStatus.DISPATCHED) == want)
        assert stuck(exporter, TaskStatus.SUBMITTED) == 0


async def test_queued_tasks_are_stuck_after_the_threshold(manual_sim: Any) -> None:
    threshold = 12
    async with manual_sim(BACKLOG) as (sim, _), \
            exporter_for(sim, stuck_threshold=threshold) as exporter:
        await advance(sim, exporter, 2 * STUCK_REFRESH_S + 2)
        want = true_stuck(sim, TaskStatus.SUBMITTED, threshold)
        assert want >= 8
        await settle_until(exporter, lambda: stuck(exporter, TaskStatus.SUBMITTED) == want)


async def test_a_task_whose_pod_is_lost_is_stuck_in_processing(manual_sim: Any) -> None:
    lost = scenario_from_dict({
        "name": "lost", "seed": 1, "partitions": [{"id": "cpu", "pods": 2}],
        "sessions": [{"name": "s", "partition": "cpu", "graph": {"kind": "bag", "tasks": 2},
                      "max_duration": MAX_DURATION_S,
                      "profile": {"processing": 1, "lost_rate": 1.0}}],
    })
    async with manual_sim(lost) as (sim, _), exporter_for(sim) as exporter:
        await advance(sim, exporter, 2 * STUCK_REFRESH_S + 2)  # noticed after 3 x 8 s only
        assert true_stuck(sim, TaskStatus.PROCESSING, MAX_DURATION_S) == 2
        await settle_until(exporter, lambda: stuck(exporter, TaskStatus.PROCESSING) == 2)
        await advance(sim, exporter, STUCK_REFRESH_S)  # noticed and retried: none stuck now
        assert true_stuck(sim, TaskStatus.PROCESSING, MAX_DURATION_S) == 0
        assert any(t.status == TaskStatus.RETRIED for t in sim.true_tasks())
        await settle_until(exporter, lambda: stuck(exporter, TaskStatus.PROCESSING) == 0)
