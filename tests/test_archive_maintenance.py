"""Archive upkeep: compaction changes no view, even when interrupted; retention drops what is old
by the data's own times; both exports hold exactly what the views show."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_archive_writer import NOW_S, fact, full_batch, micros_columns, read_rows, result, write

from armonik_observe import archive
from armonik_observe.archive import ArchiveError, maintenance
from armonik_observe.archive.schema import EVENTS, TABLES
from armonik_observe.archive.segments import write_segment
from armonik_observe.fact_columns import TaskFacts
from armonik_observe.model import SessionInfo
from armonik_observe.pipeline import Batch

VIEWS = [table.name for table in TABLES]
DAY_S = 86_400.0


def every_view(directory: Path) -> dict[str, list[dict[str, Any]]]:
    """The rows of every view, comparable across rewrites."""
    return {view: read_rows(directory, view) for view in VIEWS}


def segment_count(directory: Path, table: str) -> int:
    """How many segments of a table a new reader sees."""
    return len(archive.open(directory).files(table))


async def replayed_archive(directory: Path) -> None:
    """An archive of many small segments with duplicates, as restarts and overlaps leave it."""
    for round_ in range(4):
        batch = full_batch(tasks=20)
        batch.facts = TaskFacts.of([*batch.facts.records(),
                                    fact(100 + round_, ended=False, status="PROCESSING"),
                                    fact(100 + round_)])
        await write(directory, batch, results=[result(1, "CREATED"), result(1)],
                    clock=lambda r=round_: NOW_S + r)


# -- compaction -----------------------------------------------------------------------------


async def test_compaction_merges_segments_and_changes_no_view(tmp_path: Path) -> None:
    await replayed_archive(tmp_path / "a")
    before = every_view(tmp_path / "a")
    assert segment_count(tmp_path / "a", "tasks") == 4

    report = maintenance.compact(tmp_path / "a", min_bytes=10**9)

    assert every_view(tmp_path / "a") == before
    for table in VIEWS:
        assert segment_count(tmp_path / "a", table) == 1, table
    assert report.merged == 4 * len(VIEWS) and report.written == len(VIEWS)
    assert report.rows_after < report.rows_before  # duplicate tasks and results dropped
    assert len(read_rows(tmp_path / "a", "tasks_raw")) == len(before["tasks"])
    assert len(read_rows(tmp_path / "a", "events_raw")) == 4 * 3  # events are kept as written
    assert not list((tmp_path / "a").rglob("*.tmp"))
    # The inputs stay on disk, retired, for connections opened before (test_archive_grace.py).
    assert len(report.retired) == report.merged
    assert all(path.exists() for path in report.retired)


async def test_segments_above_the_size_are_left_alone(tmp_path: Path) -> None:
    await replayed_archive(tmp_path / "a")
    report = maintenance.compact(tmp_path / "a", min_bytes=1)
    assert (report.merged, report.written) == (0, 0)
    assert segment_count(tmp_path / "a", "tasks") == 4


async def test_an_interrupted_compaction_duplicates_nothing(tmp_path: Path) -> None:
    await replayed_archive(tmp_path / "a")
    before = every_view(tmp_path / "a")
    raw_events = len(read_rows(tmp_path / "a", "events_raw"))
    # A compaction that wrote its merged segment, then died before deleting the inputs.
    partition = next((tmp_path / "a" / "events").iterdir())
    inputs = sorted(partition.glob("*.parquet"))
    merged = pa.concat_tables([pq.ParquetFile(p).read() for p in inputs])
    write_segment(EVENTS, partition, merged, replaces=tuple(p.name for p in inputs))

    assert len(read_rows(tmp_path / "a", "events_raw")) == raw_events
    assert every_view(tmp_path / "a") == before

    report = maintenance.compact(tmp_path / "a", min_bytes=10**9)
    assert set(inputs) <= set(report.retired)
    assert every_view(tmp_path / "a") == before


async def test_compaction_leaves_unreadable_segments_alone(tmp_path: Path) -> None:
    await replayed_archive(tmp_path / "a")
    bad = tmp_path / "a" / "tasks" / "session_id=s-1" / "part-bad.parquet"
    bad.write_bytes(b"garbage")
    maintenance.compact(tmp_path / "a", min_bytes=10**9)
    assert bad.exists()
    assert len(read_rows(tmp_path / "a", "tasks")) == 24


# -- retention ------------------------------------------------------------------------------


async def test_retention_removes_partitions_whose_data_is_old(tmp_path: Path) -> None:
    directory = tmp_path / "a"
    old = Batch(facts=TaskFacts.of([fact(1, session="old")]),
                sessions=[SessionInfo("old", "CLOSED", (), 0)])
    await write(directory, old, clock=lambda: NOW_S - 40 * DAY_S)
    await write(directory, full_batch(session="recent"), clock=lambda: NOW_S)
    now = datetime.fromtimestamp(NOW_S, UTC)

    removed = maintenance.apply_retention(directory, timedelta(days=30), now)

    # The files were all written a moment ago: their mtime is not what dates them.
    assert sorted(p.relative_to(directory).as_posix() for p in removed) == [
        "sessions/session_id=old", "tasks/session_id=old"]
    assert {row["session_id"] for row in read_rows(directory, "tasks")} == {"recent"}
    assert len(read_rows(directory, "health")) == 2

    later = now + timedelta(days=31)
    maintenance.apply_retention(directory, timedelta(days=30), later)
    assert all(read_rows(directory, view) == [] for view in VIEWS)


def test_retention_needs_an_aware_time(tmp_path: Path) -> None:
    archive_dir = tmp_path / "a"
    archive.ArchiveSink(archive_dir)
    with pytest.raises(ValueError, match="aware"):
        maintenance.apply_retention(archive_dir, timedelta(days=1), datetime(2024, 1, 1))


# -- exports --------------------------------------------------------------------------------


async def test_the_duckdb_export_holds_the_views_as_tables(tmp_path: Path) -> None:
    await replayed_archive(tmp_path / "a")
    target = tmp_path / "export.duckdb"

    maintenance.export_duckdb(tmp_path / "a", target)

    connection = duckdb.connect(str(target), read_only=True)
    try:
        kinds = dict(connection.sql("SELECT table_name, table_type FROM information_schema.tables")
                     .fetchall())
        assert kinds == dict.fromkeys(VIEWS, "BASE TABLE")
        for view, rows in every_view(tmp_path / "a").items():
            exported = connection.sql(f"SELECT * FROM {view}").to_arrow_table()
            assert sorted(micros_columns(exported).to_pylist(), key=repr) == rows, view
    finally:
        connection.close()
    assert not (tmp_path / "export.duckdb.tmp").exists()
    with pytest.raises(ArchiveError, match="already exists"):
        maintenance.export_duckdb(tmp_path / "a", target)


async def test_the_parquet_export_is_one_clean_file_per_table(tmp_path: Path) -> None:
    await replayed_archive(tmp_path / "a")

    files = maintenance.export_parquet(tmp_path / "a", tmp_path / "out")

    assert sorted(p.name for p in files) == sorted(f"{view}.parquet" for view in VIEWS)
    views = every_view(tmp_path / "a")
    for table in TABLES:
        exported = pq.read_table(tmp_path / "out" / f"{table.name}.parquet")
        assert exported.schema.equals(table.schema), table.name
        assert sorted(micros_columns(exported).to_pylist(), key=repr) == views[table.name]
    maintenance.export_parquet(tmp_path / "a", tmp_path / "out", overwrite=True)
