"""Property tests: whatever the scenario, every task's record is one the real server could hold."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from armonik_observe.model import TERMINAL_TASK_STATUSES, TaskStatus, is_allowed_transition
from armonik_observe.simulator import convert
from armonik_observe.simulator.clock import ManualClock
from armonik_observe.simulator.records import SimTask
from armonik_observe.simulator.scenario import GRAPH_KINDS, scenario_from_dict
from armonik_observe.simulator.server import Simulator

START_US = 1_700_000_000_000_000
TIME_FIELDS = (
    "created_at", "submitted_at", "received_at", "acquired_at",
    "fetched_at", "started_at", "processed_at", "ended_at",
)

seconds = st.floats(min_value=0.0, max_value=2.0, allow_nan=False)
distribution = st.one_of(
    seconds,
    st.builds(lambda m: {"kind": "exponential", "mean": m}, st.floats(0.001, 2.0)),
    st.builds(lambda m, s: {"kind": "lognormal", "mean": m, "spread": s},
              st.floats(0.001, 2.0), st.floats(0.0, 1.5)),
    st.builds(lambda m, f: {"kind": "uniform", "mean": m, "spread": m * f},
              st.floats(0.0, 2.0), st.floats(0.0, 1.0)),
)
probability = st.sampled_from([0.0, 0.05, 0.3, 1.0])
profile = st.fixed_dictionaries(
    {"processing": distribution, "queue": distribution, "acquisition": distribution,
     "fetch": distribution, "finalize": distribution, "creation": distribution},
    optional={"error_rate": probability, "timeout_rate": probability,
              "cancel_rate": probability, "subtask_depth": st.integers(0, 2),
              "subtask_children": st.integers(1, 3)},
)
lifecycle = st.lists(
    st.fixed_dictionaries({"action": st.sampled_from(["pause", "resume", "cancel", "close",
                                                      "purge", "delete"]),
                           "at": st.floats(0.0, 5.0)}),
    max_size=3,
)


@st.composite
def scenarios(draw: Any) -> dict[str, Any]:
    """Small random scenarios over every graph kind, profile and session operation."""
    partitions = [{"id": f"p{i}", "pods": draw(st.integers(1, 3)), "slots": draw(st.integers(1, 2))}
                  for i in range(draw(st.integers(1, 2)))]
    groups = []
    for index in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(GRAPH_KINDS))
        graph = {"kind": kind, "tasks": draw(st.integers(1, 12)), "batch": draw(st.integers(1, 5))}
        if kind == "stream":
            graph.update(rate=draw(st.floats(5.0, 50.0)), duration=draw(st.floats(0.1, 1.0)))
        groups.append({
            "name": f"g{index}", "partition": draw(st.sampled_from(partitions))["id"],
            "count": draw(st.integers(1, 2)), "start": draw(st.floats(0.0, 3.0)),
            "every": draw(st.floats(0.0, 3.0)), "graph": graph, "profile": draw(profile),
            "max_retries": draw(st.integers(0, 2)), "max_duration": draw(st.floats(0.5, 5.0)),
            "lifecycle": draw(lifecycle),
        })
    return {"name": "random", "seed": draw(st.integers(0, 2**16)), "partitions": partitions,
            "sessions": groups}


async def play(data: dict[str, Any]) -> Simulator:
    """Play a scenario to its end on a manual clock, without serving it."""
    sim = Simulator(scenario_from_dict(data), clock=ManualClock(START_US))
    sim.workload.start()
    await sim.run_until_idle(max_seconds=3600)
    return sim


def check_timestamps(task: SimTask) -> None:
    present = [(name, getattr(task, name)) for name in TIME_FIELDS if getattr(task, name)]
    for (first, a), (second, b) in itertools.pairwise(present):
        assert a <= b, f"{task.task_id}: {first} {a} > {second} {b} ({task.history})"


def check_durations(task: SimTask) -> None:
    message = convert.task_detailed(task)
    pairs = {
        "creation_to_end_duration": "created_at",
        "processing_to_end_duration": "started_at",
        "received_to_end_duration": "received_at",
    }
    for duration_field, start_field in pairs.items():
        start = getattr(task, start_field)
        if task.ended_at is None or start is None:
            assert not message.HasField(duration_field)
            continue
        reported = convert.duration_micros(getattr(message, duration_field))
        ended = convert.timestamp_micros(message.ended_at)
        assert reported == ended - convert.timestamp_micros(getattr(message, start_field))


def check_history(task: SimTask) -> None:
    history = task.history
    assert history[0] == TaskStatus.CREATING
    assert history[-1] == task.status
    for before, after in itertools.pairwise(history):
        assert is_allowed_transition(before, after), f"{before.name} -> {after.name}"
    assert all(status not in TERMINAL_TASK_STATUSES for status in history[:-1])
    if task.status in TERMINAL_TASK_STATUSES:
        assert task.ended_at is not None


def check_retries(task: SimTask, by_id: dict[str, SimTask]) -> None:
    if not task.retry_of_ids:
        assert task.initial_task_id == task.task_id
        return
    earlier = [by_id[t] for t in task.retry_of_ids]
    assert all(t.status == TaskStatus.RETRIED for t in earlier)
    assert task.initial_task_id == task.retry_of_ids[0] == earlier[0].initial_task_id
    assert len(task.retry_of_ids) <= task.options.max_retries


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_any_scenario_yields_records_a_real_server_could_hold(data: dict[str, Any]) -> None:
    sim = asyncio.run(play(data))
    tasks = sim.true_tasks()
    by_id = {t.task_id: t for t in tasks}
    for task in tasks:
        check_timestamps(task)
        check_durations(task)
        check_history(task)
        check_retries(task, by_id)


@settings(max_examples=10, deadline=None)
@given(scenarios())
def test_runs_are_deterministic_for_a_seed(data: dict[str, Any]) -> None:
    def fingerprint(sim: Simulator) -> list[tuple[Any, ...]]:
        return [(t.task_id, t.status, t.created_at, t.ended_at, tuple(t.history))
                for t in sim.true_tasks()]

    assert fingerprint(asyncio.run(play(data))) == fingerprint(asyncio.run(play(data)))
