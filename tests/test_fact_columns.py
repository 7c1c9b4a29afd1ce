"""Task facts as columns: conversion from real ListTasks pages, and the numpy folding of metrics
checked against a plain one-fact-at-a-time reference."""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

import grpc
import numpy as np
import pytest
from armonik.protogen.client.tasks_service_pb2_grpc import TasksStub
from hypothesis import given, settings
from hypothesis import strategies as st

from armonik_observe.collectors import convert, requests
from armonik_observe.exporters.fact_metrics import FactMetrics
from armonik_observe.exporters.metrics_table import DURATION_BUCKETS
from armonik_observe.fact_columns import CORE_COLUMNS, TaskFacts
from armonik_observe.model import TaskFact
from armonik_observe.simulator.records import SimTask
from armonik_observe.simulator.scenario import scenario_from_dict

SCENARIO = {
    "name": "columns",
    "seed": 5,
    "partitions": [{"id": "cpu", "pods": 3}, {"id": "gpu", "pods": 2}],
    "sessions": [
        {"name": "pricing", "partition": "cpu", "graph": {"kind": "bag", "tasks": 60},
         "application": {"name": "pricing"},
         "profile": {"processing": 0.5, "error_rate": 0.2}, "max_retries": 1},
        {"name": "risk", "partition": "gpu", "graph": {"kind": "fanout", "tasks": 30},
         "profile": {"processing": {"kind": "exponential", "mean": 2}}},
    ],
}


async def list_page(channel: grpc.aio.Channel, detailed: bool) -> list[Any]:
    """Every ended task, as the facts poller's first ListTasks (or ListTasksDetailed) page."""
    stub = TasksStub(channel)
    request = requests.list_tasks_ended_since(0, 0, 1000)
    if detailed:
        return list((await stub.ListTasksDetailed(request)).tasks)
    return list((await stub.ListTasks(request)).tasks)


def true_core(task: SimTask) -> dict[str, Any]:
    """The core columns' values of one true task (0 for an unset time)."""
    return {
        "task_id": task.task_id, "session_id": task.session_id, "status": task.status.name,
        "partition_id": task.options.partition_id,
        "application_name": task.options.application_name,
        **{name: getattr(task, name) or 0 for name in CORE_COLUMNS[5:]},
    }


@pytest.mark.parametrize("detailed", [False, True])
async def test_columns_equal_the_true_tasks(manual_sim: Any, detailed: bool) -> None:
    async with manual_sim(scenario_from_dict(SCENARIO)) as (sim, channel):
        await sim.run_until_idle()
        tasks = await list_page(channel, detailed)
        truth = {t.task_id: t for t in sim.true_tasks()}
    facts = convert.task_facts(tasks, detailed)
    assert len(facts) == len(truth) > 90
    assert facts.complete is detailed
    assert {"ERROR", "RETRIED", "COMPLETED"} <= set(facts["status"])
    columns = {name: facts[name] for name in CORE_COLUMNS}
    columns.update({name: facts[name].tolist() for name in CORE_COLUMNS[5:]})
    for row in range(len(facts)):
        got = {name: values[row] for name, values in columns.items()}
        assert got == true_core(truth[got["task_id"]])
    if detailed:  # every field: the archive's truth tests check them against the simulator
        records = facts.records()
        assert {r.task_id: r.retry_of_ids for r in records} == {
            t.task_id: tuple(t.retry_of_ids) for t in truth.values()}
    else:
        with pytest.raises(ValueError, match="lack"):
            facts.records()


def test_records_round_trip_and_take() -> None:
    records = [fact(n, status=s) for n, s in enumerate(["COMPLETED", "ERROR", "CANCELLED"])]
    facts = TaskFacts.of(records)
    assert facts.records() == records
    kept = facts.take(np.array([True, False, True]))
    assert kept.records() == [records[0], records[2]]
    assert not TaskFacts.empty() and len(TaskFacts.empty()) == 0


# -- metrics folded with numpy, against a naive reference -----------------------------------

BASE = 1_800_000_000_000_000


def fact(n: int, *, status: str = "COMPLETED", partition: str = "cpu", app: str = "a",
         durations: tuple[int, int, int] = (2_000_000, 1_000_000, 1_500_000),
         queue_us: int | None = 300_000, finalize_us: int | None = 100_000) -> TaskFact:
    """An ended fact with the given durations (microseconds; 0 means unset); the worker
    returned `finalize_us` before the end (None: never, e.g. a timeout)."""
    submitted = BASE + n
    received = None if queue_us is None else submitted + queue_us
    ended = BASE + 10_000_000 + n
    started = ended - durations[1] if durations[1] else None
    processed = None if started is None or finalize_us is None else ended - finalize_us
    return TaskFact(
        f"t-{n}", "s", status, partition, app, "1", BASE, submitted, received, None, None,
        started, processed, ended, durations[0] or None, durations[1] or None,
        durations[2] or None)


def reference(facts: list[TaskFact]) -> dict[str, Any]:
    """ended counts, then per histogram and label set: (bucket counts, sum), one at a time."""
    ended: dict[tuple[str, str, str], int] = {}
    histograms: dict[str, dict[tuple[str, str, str], list[float]]] = {}
    busy: dict[str, float] = {}
    for f in facts:
        labels = (f.partition_id, f.application_name, f.status)
        ended[labels] = ended.get(labels, 0) + 1
        worked = 0 if f.started_at is None else (f.processed_at or f.ended_at or 0) - f.started_at
        busy[f.partition_id] = busy.get(f.partition_id, 0.0) + max(worked, 0) / 1e6
        for name, micros in (("creation", f.creation_to_end), ("processing", f.processing_to_end),
                             ("received", f.received_to_end), ("queue", f.queue_wait)):
            if micros is None:
                continue
            values = histograms.setdefault(name, {}).setdefault(
                labels, [0.0] * (len(DURATION_BUCKETS) + 2))
            values[bisect_left(DURATION_BUCKETS, micros / 1e6)] += 1
            values[-1] += micros / 1e6
    return {"ended": ended, "histograms": histograms, "busy": busy}


def folded(metrics: FactMetrics) -> dict[str, Any]:
    """The same shape, read from FactMetrics."""
    short = dict(zip(metrics.histograms, ("creation", "processing", "received", "queue"),
                     strict=True))
    histograms = {
        short[name]: {labels: [*map(float, counts.tolist()), total[0]]
                      for labels, (counts, total) in histogram.series.items()}
        for name, histogram in metrics.histograms.items() if histogram.series
    }
    return {"ended": dict(metrics.ended), "histograms": histograms, "busy": dict(metrics.busy)}


durations = st.sampled_from([0, 1, 4_999, 5_000, 5_001, 999_999, 1_000_000, 21_600_000_000,
                             30_000_000_000]) | st.integers(0, 40_000_000_000)
facts_strategy = st.lists(st.builds(
    fact, st.integers(0, 10**6), status=st.sampled_from(["COMPLETED", "ERROR", "CANCELLED"]),
    partition=st.sampled_from(["cpu", "gpu"]), app=st.sampled_from(["a", "b", ""]),
    durations=st.tuples(durations, durations, durations),
    queue_us=st.none() | st.sampled_from([0, 5_000, 7_200_000_000]) | st.integers(0, 10**9),
    finalize_us=st.none() | st.integers(0, 2_000_000)),
    max_size=60)


@settings(max_examples=150, deadline=None)
@given(facts_strategy, st.integers(1, 25))
def test_numpy_folding_equals_one_fact_at_a_time(facts: list[TaskFact], page: int) -> None:
    metrics = FactMetrics()
    for start in range(0, len(facts), page):
        metrics.add(TaskFacts.of(facts[start:start + page]))
    got, want = folded(metrics), reference(facts)
    assert got["ended"] == want["ended"]
    assert got["busy"].keys() == want["busy"].keys()
    for partition, seconds in want["busy"].items():
        assert got["busy"][partition] == pytest.approx(seconds)
    assert got["histograms"].keys() == want["histograms"].keys()
    for name, series in want["histograms"].items():
        assert got["histograms"][name].keys() == series.keys()
        for labels, values in series.items():
            assert got["histograms"][name][labels][:-1] == values[:-1], (name, labels)
            assert got["histograms"][name][labels][-1] == pytest.approx(values[-1])
