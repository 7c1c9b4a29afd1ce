"""Upkeep rounds run in a child process: the archive is compacted and measured, the exporter's
memory untouched; a stop ends a round in progress, a failing round is retried."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from test_archive_maintenance import every_view, replayed_archive, segment_count

from armonik_observe import archive
from armonik_observe.archive.upkeep import ArchiveUpkeep

NOW = datetime(2026, 12, 1, tzinfo=UTC)


async def run_rounds(upkeep: ArchiveUpkeep, rounds: int) -> None:
    """Run the upkeep until it has done `rounds` rounds (or failed that often), then stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(upkeep.run(stop))
    while upkeep.rounds + upkeep.failures < rounds:
        await asyncio.wait({task}, timeout=0.05)
        assert not task.done(), task
    stop.set()
    await asyncio.wait_for(task, 30)


async def test_a_round_in_a_child_compacts_and_measures_the_archive(tmp_path: Path) -> None:
    directory = tmp_path / "a"
    await replayed_archive(directory)
    before = every_view(directory)
    assert segment_count(directory, "tasks") == 4
    upkeep = ArchiveUpkeep(directory, interval=3600, clock=lambda: NOW)
    await run_rounds(upkeep, 1)
    assert upkeep.failures == 0
    assert segment_count(directory, "tasks") == 1
    assert every_view(directory) == before
    assert upkeep.stats == archive.open(directory).stats()
    assert upkeep.stats["tasks"].rows > 0


async def test_the_child_applies_retention_at_the_upkeep_clock(tmp_path: Path) -> None:
    directory = tmp_path / "a"
    await replayed_archive(directory)  # rows observed in 2023 (NOW_S of the writer tests)
    upkeep = ArchiveUpkeep(directory, interval=3600, retention=timedelta(days=30),
                           clock=lambda: NOW)
    await run_rounds(upkeep, 1)
    assert upkeep.removed_partitions > 0
    assert archive.open(directory).query("SELECT count(*) FROM tasks")[0][0] == 0


async def test_a_failing_round_is_counted_and_retried(tmp_path: Path) -> None:
    upkeep = ArchiveUpkeep(tmp_path / "not-an-archive", interval=0.01, clock=lambda: NOW)
    await run_rounds(upkeep, 2)
    assert upkeep.failures >= 2 and upkeep.rounds == 0


async def test_stopping_ends_a_round_in_progress(tmp_path: Path) -> None:
    directory = tmp_path / "a"
    await replayed_archive(directory)
    upkeep = ArchiveUpkeep(directory, interval=3600, clock=lambda: NOW)
    stop = asyncio.Event()
    task = asyncio.create_task(upkeep.run(stop))
    await asyncio.sleep(0)  # the child is being started
    stop.set()
    await asyncio.wait_for(task, 10)
    assert upkeep.failures == 0
