"""What a new user hits first (issue 13): the demo run twice, start-up failures, config files,
errors, logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import START_US

from armonik_observe.config import SimulatorSettings
from armonik_observe.runner import build_simulator
from armonik_observe.simulator.builtin import builtin_scenario
from armonik_observe.simulator.clock import ManualClock
from armonik_observe.simulator.server import Simulator


async def played(salt: int) -> tuple[list[str], list[str]]:
    """A `dag` run's task ids and statuses (in creation order), on a manual clock."""
    sim = Simulator(builtin_scenario("dag"), clock=ManualClock(START_US), id_salt=salt)
    async with sim:
        await sim.run_until_idle()
        tasks = sorted(sim.true_tasks(), key=lambda t: (t.created_at, t.task_id))
        return [t.task_id for t in tasks], [t.status.name for t in tasks]


async def test_two_runs_of_one_seed_play_the_same_workload_under_new_ids() -> None:
    first_ids, first_statuses = await played(1)
    again_ids, _ = await played(1)
    other_ids, other_statuses = await played(2)
    assert again_ids == first_ids  # a salt and a seed: the same ids
    assert not set(other_ids) & set(first_ids)  # a new run: no id in common
    assert sorted(other_statuses) == sorted(first_statuses)  # the same workload
    assert len(first_ids) > 100


def test_each_run_of_the_commands_gets_a_new_salt() -> None:
    settings = SimulatorSettings.build(scenario="dag", faults="", listen="127.0.0.1:0")
    ids = {build_simulator(settings).plane.new_id() for _ in range(3)}
    assert len(ids) == 3


async def test_archive_sizes_are_current_between_two_upkeep_rounds(
    manual_sim: Any, tmp_path: Path
) -> None:
    from exporter_harness import archive_of, exporter_for, sample, settle, wait_until
    from test_archive_truth import MIXED, archive_settings, run_to_end

    from armonik_observe import archive

    directory = tmp_path / "archive"
    async with manual_sim(MIXED) as (sim, _), exporter_for(
            sim, **archive_settings(directory)) as exporter:
        output = archive_of(exporter)
        await wait_until(lambda: output.upkeep.rounds >= 1)  # the round at start: empty
        await run_to_end(sim, exporter)
        await settle(exporter)
        await output.flush()
        stats = archive.open(directory).stats()
        assert output.upkeep.rounds == 1  # no round since: the figures come from the writer
        for table in ("tasks", "events", "sessions"):
            labels = {"table": table}
            assert sample(exporter, "armonik_observe_archive_rows", labels) == \
                stats[table].rows > 0, table
            assert sample(exporter, "armonik_observe_archive_bytes", labels) == \
                stats[table].bytes, table
