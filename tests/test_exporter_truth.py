"""After a scenario ends, the exporter's metrics equal the simulator's ground truth."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from exporter_harness import ended_by_labels, exporter_for, sample, settle

from armonik_observe.exporters.state_metrics import TASK_STATUSES
from armonik_observe.model import TERMINAL_TASK_STATUSES
from armonik_observe.simulator.records import SimTask
from armonik_observe.simulator.scenario import scenario_from_dict

MIXED = {
    "name": "mixed",
    "seed": 11,
    "partitions": [{"id": "cpu", "pods": 3}, {"id": "gpu-a100", "pods": 2, "slots": 2}],
    "sessions": [
        {"name": "pricing", "partition": "cpu", "count": 2, "every": 5,
         "graph": {"kind": "bag", "tasks": 60},
         "application": {"name": "pricing"},
         "profile": {"processing": {"kind": "lognormal", "mean": 0.8, "spread": 0.7},
                     "error_rate": 0.1, "timeout_rate": 0.02},
         "max_retries": 1, "max_duration": 5},
        {"name": "risk", "partition": "gpu-a100", "start": 2,
         "graph": {"kind": "fanout", "tasks": 30}, "application": {"name": "risk"},
         "profile": {"processing": {"kind": "exponential", "mean": 2}}},
        {"name": "dag", "partition": "cpu", "start": 1,
         "graph": {"kind": "subtasking", "tasks": 4},
         "profile": {"processing": 0.5, "subtask_depth": 2, "subtask_children": 2}},
    ],
}


async def run_to_end(manual_sim: Any, scenario: dict[str, Any] = MIXED,
                     **options: Any) -> tuple[Any, Any]:
    async with (
        manual_sim(scenario_from_dict(scenario)) as (sim, _),
        exporter_for(sim, **options) as exporter,
    ):
        await settle(exporter, 1)
        while sim.scheduler.next_due() is not None:
            await sim.advance(1.0)
            exporter.streams.flush()
        await settle(exporter)
        return sim, exporter


async def test_ended_totals_and_histograms_equal_the_truth(manual_sim: Any) -> None:
    sim, exporter = await run_to_end(manual_sim)
    tasks = sim.true_tasks()
    truth = ended_by_labels(tasks)
    assert sum(truth.values()) == len(tasks) > 150
    for (partition, app, status), count in truth.items():
        labels = {"partition": partition, "application": app, "status": status}
        assert sample(exporter, "armonik_tasks_ended_total", labels) == count
        ended = [t for t in tasks if (t.partition_id, t.options.application_name,
                                      t.status.name) == (partition, app, status)]
        for metric, attribute in (("armonik_task_creation_to_end_seconds", "creation_to_end"),
                                  ("armonik_task_processing_to_end_seconds",
                                   "processing_to_end"),
                                  ("armonik_task_received_to_end_seconds", "received_to_end")):
            values = [getattr(t, attribute) for t in ended if getattr(t, attribute) is not None]
            assert sample(exporter, f"{metric}_count", labels) == len(values)
            assert sample(exporter, f"{metric}_sum", labels) == pytest.approx(
                sum(values) / 1e6, rel=1e-9)
        waits = [t.received_at - t.submitted_at for t in ended
                 if t.received_at is not None and t.submitted_at is not None]
        assert sample(exporter, "armonik_task_queue_wait_seconds_count", labels) == len(waits)
        assert sample(exporter, "armonik_task_queue_wait_seconds_sum", labels) == pytest.approx(
            sum(waits) / 1e6, rel=1e-9)


async def test_task_counts_equal_the_truth_zero_filled(manual_sim: Any) -> None:
    sim, exporter = await run_to_end(manual_sim)
    truth = Counter((t.partition_id, t.status.name) for t in sim.plane.tasks.values())
    for partition in ("cpu", "gpu-a100"):
        for status in TASK_STATUSES:
            labels = {"partition": partition, "status": status}
            assert sample(exporter, "armonik_tasks", labels) == truth[(partition, status)]
    assert sample(exporter, "armonik_up") == 1
    assert sample(exporter, "armonik_sessions", {"status": "CLOSED"}) == 4
    assert sample(exporter, "armonik_partition_pod_max", {"partition": "gpu-a100"}) == 2


async def test_official_exporter_names_are_kept(manual_sim: Any) -> None:
    _, exporter = await run_to_end(manual_sim)
    assert sample(exporter, "armonik_gpu_a100_tasks_queued") == 0
    assert sample(exporter, "armonik_tasks_processing") == 0
    assert exporter.registry.get_sample_value("armonik_cpu_tasks_submitted") == 0


async def test_no_core_compat_drops_the_official_names(manual_sim: Any) -> None:
    _, exporter = await run_to_end(manual_sim, core_compat=False)
    assert exporter.registry.get_sample_value("armonik_tasks_queued") is None
    assert sample(exporter, "armonik_up") == 1


async def test_health_and_versions(manual_sim: Any) -> None:
    _, exporter = await run_to_end(manual_sim)
    healthy = {"service": "queue", "state": "HEALTHY"}
    assert sample(exporter, "armonik_service_health", healthy) == 1
    assert sample(exporter, "armonik_service_health", {**healthy, "state": "DEGRADED"}) == 0
    assert exporter.registry.get_sample_value("armonik_api_info", {"version": "3.29.0"}) == 1


# Two pods, one slot each, one-second tasks: the session completes two tasks a second.
TWO_A_SECOND = {
    "name": "two-a-second",
    "seed": 3,
    "partitions": [{"id": "cpu", "pods": 2}],
    "sessions": [{"name": "bag", "partition": "cpu", "graph": {"kind": "bag", "tasks": 40},
                  "profile": {"processing": 1.0}}],
}


async def test_a_running_session_has_an_eta_from_its_completion_rate(manual_sim: Any) -> None:
    async with (
        manual_sim(scenario_from_dict(TWO_A_SECOND)) as (sim, _),
        exporter_for(sim) as exporter,
    ):
        await settle(exporter, 1)
        for _ in range(8):
            await sim.advance(1.0)
            await settle(exporter, 1)
        (session_id,) = exporter.discovery.followed
        remaining = sum(t.status not in TERMINAL_TASK_STATUSES for t in sim.true_tasks())
        assert 0 < remaining < 40
        eta = sample(exporter, "armonik_session_completion_eta_seconds", {"session": session_id})
        assert eta == pytest.approx(remaining / 2, rel=0.1)


def true_busy_seconds(tasks: list[SimTask]) -> Counter[str]:
    """Worker seconds per partition: processed_at (else ended_at) - started_at of ended tasks."""
    busy: Counter[str] = Counter()
    for task in tasks:
        if task.status in TERMINAL_TASK_STATUSES and task.started_at is not None:
            until = task.processed_at or task.ended_at
            assert until is not None
            busy[task.partition_id] += (until - task.started_at) / 1e6
    return busy


async def test_busy_seconds_equal_the_true_worker_time(manual_sim: Any) -> None:
    idle = {**MIXED, "partitions": [*MIXED["partitions"], {"id": "idle"}]}
    sim, exporter = await run_to_end(manual_sim, idle)
    tasks = sim.true_tasks()
    # Timed-out tasks never returned: their worker time runs to ended_at.
    assert any(t.status.name == "TIMEOUT" and t.processed_at is None for t in tasks)
    truth = true_busy_seconds(tasks)
    for partition in ("cpu", "gpu-a100"):
        got = sample(exporter, "armonik_partition_busy_seconds_total", {"partition": partition})
        assert got == pytest.approx(truth[partition], rel=1e-9) and got > 0
    assert sample(exporter, "armonik_partition_busy_seconds_total", {"partition": "idle"}) == 0


async def test_busy_seconds_over_the_run_are_the_busy_workers(manual_sim: Any) -> None:
    """Two single-slot pods kept busy by one-second tasks: two workers busy on average."""
    sim, exporter = await run_to_end(manual_sim, TWO_A_SECOND)
    tasks = sim.true_tasks()
    first = min(t.started_at for t in tasks if t.started_at is not None)
    last = max(t.processed_at for t in tasks if t.processed_at is not None)
    busy = sample(exporter, "armonik_partition_busy_seconds_total", {"partition": "cpu"})
    assert busy == pytest.approx(40.0)
    # Slightly below 2: a worker is idle between tasks (finalizing, acquiring the next one).
    assert 1.95 < busy / ((last - first) / 1e6) <= 2.0
