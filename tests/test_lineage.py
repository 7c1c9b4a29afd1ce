"""The producer of each result, and the task graph's data edges, against the simulator's truth."""

from __future__ import annotations

from typing import Any

import polars as pl
from test_archive_truth import MIXED

from armonik_observe.lineage import dependency_edges, producers
from armonik_observe.simulator.server import Simulator


def tasks_frame(sim: Simulator) -> pl.LazyFrame:
    return pl.LazyFrame(
        [{"task_id": t.task_id, "created_at": t.created_at,
          "expected_output_ids": list(t.expected_output_ids),
          "data_dependencies": list(t.data_dependencies)} for t in sim.true_tasks()],
        schema={"task_id": pl.String, "created_at": pl.Int64,
                "expected_output_ids": pl.List(pl.String),
                "data_dependencies": pl.List(pl.String)})


def results_frame(sim: Simulator) -> pl.LazyFrame:
    return pl.LazyFrame([{"result_id": r.result_id, "owner_task_id": r.owner_task_id}
                         for r in sim.plane.results.values()],
                        schema={"result_id": pl.String, "owner_task_id": pl.String})


def owned(sim: Simulator) -> dict[str, str]:
    """The truth: results some task must produce, and their final owner."""
    return {r.result_id: r.owner_task_id for r in sim.plane.results.values() if r.owner_task_id}


async def test_the_last_task_expecting_a_result_is_its_producer(manual_sim: Any) -> None:
    async with manual_sim(MIXED) as (sim, _):
        await sim.run_until_idle()
        truth = owned(sim)
        handed_over = [t for t in sim.true_tasks() if t.parent_task_ids and
                       set(t.expected_output_ids) & {o for p in t.parent_task_ids for o in
                                                     sim.plane.tasks[p].expected_output_ids}]
        retried = [t for t in sim.true_tasks() if t.retry_of_ids]
        assert handed_over and retried  # the rule's two cases are exercised
        found = dict(producers(tasks_frame(sim)).collect().iter_rows())
        assert found == truth
        with_results = dict(producers(tasks_frame(sim), results_frame(sim)).collect().iter_rows())
        assert {k: v for k, v in with_results.items() if k in truth} == truth


async def test_dependency_edges_point_at_the_producers(manual_sim: Any) -> None:
    async with manual_sim(MIXED) as (sim, _):
        await sim.run_until_idle()
        truth = owned(sim)
        expected = {(t.task_id, r, truth[r]) for t in sim.true_tasks()
                    for r in t.data_dependencies if r in truth}
        assert len(expected) >= 25  # the fan-out waits for its producers
        edges = set(dependency_edges(tasks_frame(sim)).collect().iter_rows())
        assert edges == expected
