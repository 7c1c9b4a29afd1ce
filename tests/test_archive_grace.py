"""Compaction and retention never pull files from under a reader: what they supersede or drop is
retired, readable by connections opened before for a grace period, skipped by new ones, then
deleted; past the grace an old connection gets one clear error. A crash between steps loses and
duplicates nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_archive_maintenance import DAY_S, VIEWS, every_view, replayed_archive
from test_archive_writer import NOW_S, fact, full_batch, micros_columns, write

from armonik_observe import archive
from armonik_observe.archive import ArchiveError, maintenance, retired
from armonik_observe.archive.upkeep import ArchiveUpkeep
from armonik_observe.fact_columns import TaskFacts
from armonik_observe.model import SessionInfo
from armonik_observe.pipeline import Batch

NOW = datetime.fromtimestamp(NOW_S, UTC)
GRACE = timedelta(hours=1)
RETENTION = timedelta(days=30)


async def two_sessions(directory: Path) -> None:
    """An archive of many small segments with duplicates (session s-1, recent) and one session
    whose data is 40 days old."""
    await replayed_archive(directory)
    old = Batch(facts=TaskFacts.of([fact(500, session="old"), fact(501, session="old")]),
                sessions=[SessionInfo("old", "CLOSED", (), 0)])
    await write(directory, old, clock=lambda: NOW_S - 40 * DAY_S)


def held_rows(held: archive.Archive) -> dict[str, list[dict[str, Any]]]:
    """Every view's rows through a held archive's own connection."""
    rows = {}
    for view in VIEWS:
        table = held.connection.sql(f"SELECT * FROM {view}").to_arrow_table()
        rows[view] = sorted(micros_columns(table).to_pylist(), key=repr)
    return rows


def tasks_per_id(directory: Path) -> tuple[int, int]:
    """(raw task rows, distinct task ids) as a new connection sees them."""
    rows = archive.open(directory).query("SELECT count(*), count(DISTINCT task_id) FROM tasks_raw")
    return rows[0]


def on_disk(directory: Path) -> set[Path]:
    """Every segment file under the archive, retired or not."""
    return set(directory.rglob("*.parquet"))


async def test_a_connection_held_across_compaction_and_retention_keeps_answering(
    tmp_path: Path
) -> None:
    directory = tmp_path / "a"
    await two_sessions(directory)
    written = on_disk(directory)
    with archive.open(directory) as held:
        before = held_rows(held)
        tasks_before = held.query("SELECT count(*) FROM tasks_raw")
        assert {row["session_id"] for row in before["tasks"]} == {"s-1", "old"}

        report = maintenance.compact(directory, min_bytes=10**9, now=NOW)
        expired = maintenance.apply_retention(directory, RETENTION, NOW)

        assert report.merged and expired
        assert on_disk(directory) >= written  # nothing deleted yet
        # The held connection answers as before, every view, and through Polars too.
        assert held_rows(held) == before
        assert held.query("SELECT count(*) FROM tasks_raw") == tasks_before
        assert held.lazy("tasks").collect().height == len(before["tasks"])

        # A new connection sees the compacted archive without the old session, once each.
        fresh = every_view(directory)
        assert {row["session_id"] for row in fresh["tasks"]} == {"s-1"}
        assert fresh["tasks"] == [row for row in before["tasks"] if row["session_id"] == "s-1"]
        raw, distinct = tasks_per_id(directory)
        assert raw == distinct == len(fresh["tasks"])

        # One second before the grace is over, nothing goes; at its end, the retired files do.
        maintenance.compact(directory, min_bytes=10**9, now=NOW + GRACE - timedelta(seconds=1))
        assert held_rows(held) == before
        purged = maintenance.compact(directory, min_bytes=10**9, now=NOW + GRACE)
        assert set(purged.removed) == written - on_disk(directory) and purged.removed
        assert not (directory / "tasks" / "session_id=old").exists()

        with pytest.raises(ArchiveError, match="reopen the archive") as raised:
            held.query("SELECT count(*) FROM tasks")
        assert "\n" not in str(raised.value) and raised.value.__cause__ is None
        with pytest.raises(ArchiveError, match="reopen the archive"):
            held.lazy("tasks")
    assert every_view(directory) == fresh


async def test_a_new_connection_never_counts_a_row_twice_during_the_grace(tmp_path: Path) -> None:
    compacted, untouched = tmp_path / "a", tmp_path / "b"
    for directory in (compacted, untouched):
        await replayed_archive(directory)
    for step in range(3):  # each compaction merges the one before with new segments
        for directory in (compacted, untouched):
            await write(directory, full_batch(tasks=20), clock=lambda s=step: NOW_S + 10 + s)
        maintenance.compact(compacted, min_bytes=10**9, now=NOW + timedelta(minutes=20 * step))

    assert every_view(compacted) == every_view(untouched)
    raw, distinct = tasks_per_id(compacted)
    assert raw == distinct
    assert len(archive.open(compacted).files("tasks")) == 1
    assert len(on_disk(compacted)) > len(on_disk(untouched))  # the retired ones, still there


async def test_upkeep_takes_its_grace_and_clock(tmp_path: Path) -> None:
    directory = tmp_path / "a"
    await two_sessions(directory)
    now = [NOW]
    upkeep = ArchiveUpkeep(directory, retention=RETENTION, grace=timedelta(minutes=10),
                           clock=lambda: now[0])
    with archive.open(directory) as held:
        before = held_rows(held)
        upkeep.once()
        assert upkeep.removed_partitions == 2  # the old session's tasks and sessions
        now[0] += timedelta(minutes=9)
        upkeep.once()
        assert held_rows(held) == before
        now[0] += timedelta(minutes=1)
        upkeep.once()
        live = {path for view in VIEWS for path in archive.open(directory).files(view)}
        assert on_disk(directory) == live  # the retired files are gone
        with pytest.raises(ArchiveError, match="reopen the archive"):
            held.query("SELECT count(*) FROM tasks")
    assert retired.read(directory) == {}
    assert upkeep.stats["tasks"].files == len(archive.open(directory).files("tasks"))


def test_a_negative_grace_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="negative"):
        ArchiveUpkeep(tmp_path, grace=timedelta(seconds=-1))


async def test_a_partition_written_again_after_retention_keeps_its_new_rows(
    tmp_path: Path
) -> None:
    directory = tmp_path / "a"
    await two_sessions(directory)
    maintenance.apply_retention(directory, RETENTION, NOW)
    await write(directory, Batch(facts=TaskFacts.of([fact(900, session="old")])))

    assert [r["task_id"] for r in every_view(directory)["tasks"] if r["session_id"] == "old"] \
        == ["task-000900"]
    maintenance.compact(directory, now=NOW + GRACE)  # purges the retired segments only
    assert [r["task_id"] for r in every_view(directory)["tasks"] if r["session_id"] == "old"] \
        == ["task-000900"]


# -- a crash between two steps ----------------------------------------------------------------


class Crash(Exception):
    """A process dying at this point."""


async def test_a_compaction_stopped_before_retiring_its_inputs_loses_and_duplicates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "a"
    await replayed_archive(directory)
    before = every_view(directory)
    inputs = on_disk(directory)

    def crash(*args: Any) -> list[Path]:
        raise Crash

    with archive.open(directory) as held, monkeypatch.context() as patch:
        patch.setattr(retired, "retire", crash)
        with pytest.raises(Crash):  # merged segments written, their inputs not yet retired
            maintenance.compact(directory, min_bytes=10**9, now=NOW)
        assert held_rows(held) == before
    assert every_view(directory) == before
    assert retired.read(directory) == {}

    report = maintenance.compact(directory, min_bytes=10**9, now=NOW)
    assert set(report.retired) == inputs  # the next pass retires them, no merge again
    assert report.merged == 0
    maintenance.compact(directory, min_bytes=10**9, now=NOW + GRACE)
    assert not inputs & on_disk(directory)
    assert every_view(directory) == before


async def test_a_purge_stopped_before_its_ledger_write_loses_and_duplicates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "a"
    await two_sessions(directory)
    maintenance.compact(directory, min_bytes=10**9, now=NOW)
    maintenance.apply_retention(directory, RETENTION, NOW)
    after = every_view(directory)
    ledger = retired.read(directory)

    def crash(*args: Any) -> None:
        raise Crash

    with monkeypatch.context() as patch:
        patch.setattr(retired, "_write", crash)
        with pytest.raises(Crash):  # files deleted, the ledger still names them
            retired.purge(directory, GRACE, retired.micros(NOW + GRACE))
    assert retired.read(directory) == ledger
    assert not any((directory / path).exists() for path in ledger)
    assert every_view(directory) == after

    assert {directory / path for path in ledger} == set(
        retired.purge(directory, GRACE, retired.micros(NOW + GRACE)))
    assert retired.read(directory) == {}
    assert every_view(directory) == after
