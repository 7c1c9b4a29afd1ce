"""Processes started in any order: task ends count from the exporter's own start (issue 9).

The exporter starts before the control plane answers, is restarted before it ever has, or reads
a server clock ahead of or behind its own: every task whose server `ended_at` is at or after
T0 - backfill - clock_skew is counted exactly once and archived.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from exporter_harness import exporter_for, sample, settle, settle_until
from test_archive_truth import (
    archive_settings,
    assert_results_equal_the_truth,
    assert_tasks_equal_the_truth,
    catch_up,
    ended,
)
from test_exporter_faults import assert_ended_equal_the_truth, run_to_end

from armonik_observe.service import Exporter
from armonik_observe.simulator.faults import FaultPlan, RpcFaults
from armonik_observe.simulator.scenario import scenario_from_dict
from armonik_observe.simulator.server import Simulator

SECOND = 1_000_000



def waves(count: int) -> Any:
    """Waves of tasks, 20 s apart, each ending within about 5 s."""
    return scenario_from_dict({
        "name": "waves",
        "seed": 5,
        "partitions": [{"id": "default", "pods": 6, "slots": 2}],
        "sessions": [{"name": "wave", "partition": "default", "count": count, "every": 20,
                      "graph": {"kind": "bag", "tasks": 150},
                      "profile": {"processing": {"kind": "exponential", "mean": 0.3},
                                  "error_rate": 0.05}}],
    })


# The first wave ends before the control plane first answers.
WAVES = waves(3)


def ended_total(exporter: Exporter) -> int:
    return sum(exporter.sink.facts.ended.values())


async def finish(sim: Simulator, exporter: Exporter) -> None:
    """Run the scenario to its end and wait until the exporter has read every end."""
    await run_to_end(sim, exporter)
    await settle_until(exporter, lambda: ended_total(exporter) >= len(ended(sim)))
    await catch_up(exporter)


async def test_ends_before_the_control_plane_first_answers_are_counted_and_archived(
    manual_sim: Any, tmp_path: Path
) -> None:
    directory = tmp_path / "archive"
    async with manual_sim(WAVES) as (sim, _):
        await sim.take_down()
        async with exporter_for(sim, **archive_settings(directory)) as exporter:
            await settle(exporter, 2)
            assert sample(exporter, "armonik_up") == 0
            assert exporter.facts.ok is False
            await sim.advance(25)  # the first wave ends while nothing answers
            first_wave = len(ended(sim))
            assert first_wave >= 150
            await settle(exporter, 2)
            await sim.bring_up()
            await finish(sim, exporter)
            assert_ended_equal_the_truth(sim, exporter)
        assert_tasks_equal_the_truth(directory, ended(sim))
        assert_results_equal_the_truth(directory, sim, set(sim.workload.session_ids))


async def test_a_restart_before_the_control_plane_ever_answered_keeps_the_start_point(
    manual_sim: Any, tmp_path: Path
) -> None:
    directory = tmp_path / "archive"
    async with manual_sim(WAVES) as (sim, _):
        await sim.take_down()
        async with exporter_for(sim, **archive_settings(directory)) as first:
            await settle(first, 2)
            floor = first.facts.start_point()
        await sim.advance(25)  # the first wave ends: no exporter runs, nothing answers
        async with exporter_for(sim, **archive_settings(directory)) as second:
            assert second.facts.start_point() == floor  # the first start, kept in the archive
            await settle(second, 2)
            await sim.advance(5)
            await sim.bring_up()
            await finish(sim, second)
            assert_ended_equal_the_truth(sim, second)
        assert_tasks_equal_the_truth(directory, ended(sim))
        assert_results_equal_the_truth(directory, sim, set(sim.workload.session_ids))


async def test_cut_connections_and_failing_pages_before_the_first_answer_lose_nothing(
    manual_sim: Any, tmp_path: Path
) -> None:
    directory = tmp_path / "archive"
    plan = FaultPlan(cut_rate=0.02, rpcs={"ListTasksDetailed": RpcFaults(unavailable=0.4),
                                          "ListSessions": RpcFaults(unavailable=0.4)})
    async with manual_sim(WAVES, faults=plan) as (sim, _):
        await sim.take_down()
        async with exporter_for(sim, **archive_settings(directory)) as exporter:
            await settle(exporter, 2)
            await sim.advance(10)
            await sim.bring_up()
            await sim.advance(10)
            async with sim.down():
                await sim.advance(10)
                await settle(exporter, 2)
            await finish(sim, exporter)
            assert_ended_equal_the_truth(sim, exporter)
        assert_tasks_equal_the_truth(directory, ended(sim))


@pytest.mark.parametrize("server_ahead_s", [20.0, -20.0])
async def test_a_server_clock_within_the_skew_loses_no_end(
    manual_sim: Any, server_ahead_s: float
) -> None:
    async with manual_sim(waves(5)) as (sim, _):
        await sim.advance(61)  # three waves have ended, the fourth is running
        offset = int(server_ahead_s * SECOND)
        started_at = sim.clock.now_us() - offset  # T0 on the exporter's clock
        floor = started_at - 30 * SECOND  # the default --clock-skew, no backfill
        clock = lambda: (sim.clock.now_us() - offset) / SECOND  # noqa: E731
        async with exporter_for(sim, clock=clock) as exporter:
            assert exporter.facts.start_point() == floor
            await run_to_end(sim, exporter)
            ends = [t.ended_at or 0 for t in ended(sim)]
            expected = sum(end >= floor for end in ends)
            await settle_until(exporter, lambda: ended_total(exporter) >= expected)
            await settle(exporter)
            assert ended_total(exporter) == expected
        # The rule cut the history, and kept every end after the start (in server time).
        after_start = sum(end >= started_at + offset for end in ends)
        assert 0 < after_start <= expected < len(ends)
