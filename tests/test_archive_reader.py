"""Reading the archive: views with the right columns even when empty, one row per entity in DuckDB
and Polars alike, bad segments skipped by name, and the summaries the exporter needs."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_archive_writer import (
    NOW_S,
    T0,
    fact,
    facts_batch,
    full_batch,
    micros_columns,
    read_rows,
    result,
    summary,
    write,
)

from armonik_observe import archive
from armonik_observe.archive import ArchiveError, layout
from armonik_observe.archive.schema import TABLES, TASKS, empty_table
from armonik_observe.fact_columns import TaskFacts
from armonik_observe.model import SessionInfo
from armonik_observe.pipeline import Batch

VIEWS = [table.name for table in TABLES]

# -- empty and bad archives -----------------------------------------------------------------


async def test_an_empty_archive_has_every_view_with_its_columns(tmp_path: Path) -> None:
    await write(tmp_path / "a")
    with archive.open(tmp_path / "a") as opened:
        for table in TABLES:
            for name in (table.name, f"{table.name}_raw"):
                relation = opened.connection.sql(f"SELECT * FROM {name}")
                assert relation.columns == table.schema.names, name
                assert relation.fetchall() == []
    for table in TABLES:
        assert archive.open(tmp_path / "a").lazy(table.name).collect().columns == \
            table.schema.names


def test_a_directory_that_is_no_archive_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="not an armonik-observe archive"):
        archive.open(tmp_path)


async def test_a_corrupt_segment_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await write(tmp_path / "a", facts_batch(fact(1), fact(2)))
    partition = tmp_path / "a" / "tasks" / "session_id=s-1"
    garbage = partition / "part-garbage.parquet"
    garbage.write_bytes(b"PAR1 this is not parquet at all")
    truncated = partition / "part-truncated.parquet"
    whole = next(p for p in partition.iterdir() if p not in (garbage,))
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])

    opened = archive.open(tmp_path / "a")
    assert opened.query("SELECT count(*) FROM tasks") == [(2,)]
    assert any(str(garbage) in warning for warning in opened.warnings)
    assert any(str(truncated) in warning for warning in opened.warnings)
    assert str(garbage) in caplog.text
    assert opened.lazy("tasks").collect().height == 2


async def test_a_segment_with_foreign_types_is_skipped(tmp_path: Path) -> None:
    await write(tmp_path / "a", facts_batch(fact(1)))
    foreign = tmp_path / "a" / "tasks" / "session_id=s-1" / "part-foreign.parquet"
    pq.write_table(pa.table({"session_id": ["s-1"], "task_id": [1], "ended_at": ["today"]}),
                   foreign)

    unknown = foreign.with_name("part-unknown.parquet")
    pq.write_table(pa.table({"session_id": ["s-1"], "colour": ["blue"]}), unknown)

    opened = archive.open(tmp_path / "a")
    assert opened.query("SELECT count(*) FROM tasks") == [(1,)]
    with opened:
        assert opened.connection.sql("SELECT * FROM tasks").columns == TASKS.schema.names
    assert any(str(foreign) in warning and "task_id" in warning for warning in opened.warnings)
    assert any(str(unknown) in warning and "colour" in warning for warning in opened.warnings)


async def test_a_stray_tmp_file_is_reported_and_a_fresh_one_ignored(tmp_path: Path) -> None:
    await write(tmp_path / "a", facts_batch(fact(1)))
    partition = tmp_path / "a" / "tasks" / "session_id=s-1"
    stray = partition / "part-crashed.parquet.tmp"
    stray.write_bytes(b"half a segment")
    hour_ago = time.time() - 3600
    os.utime(stray, (hour_ago, hour_ago))
    in_flight = partition / "part-writing.parquet.tmp"
    in_flight.write_bytes(b"being written")

    opened = archive.open(tmp_path / "a")
    assert opened.query("SELECT count(*) FROM tasks") == [(1,)]
    assert [w for w in opened.warnings if ".tmp" in w] == [
        f"skipped archive segment {stray}: unfinished write (a .tmp file)"]


async def test_each_bad_file_is_checked_and_reported_once(tmp_path: Path) -> None:
    await write(tmp_path / "a", facts_batch(fact(1)))
    (tmp_path / "a" / "tasks" / "session_id=s-1" / "part-bad.parquet").write_bytes(b"x")
    opened = archive.open(tmp_path / "a")
    for _ in range(3):
        opened.connect().close()
    assert len(opened.warnings) == 1


# -- one row per entity ---------------------------------------------------------------------


async def test_duckdb_and_polars_keep_the_same_rows(tmp_path: Path) -> None:
    tied = fact(4, pod_hostname="b")
    await write(tmp_path / "a", facts_batch(
        fact(1, ended=False, status="PROCESSING"), fact(1),
        summary(2), fact(2, status="ERROR", ended_at=T0 + 10**9),
        fact(3, ended=False, status="SUBMITTED"), fact(3, ended=False, status="DISPATCHED"),
        tied, fact(4, pod_hostname="a"), tied,
    ), results=[result(1, "CREATED"), result(1), result(2, "ABORTED"), result(2, "CREATED")])
    await write(tmp_path / "a", full_batch(tasks=1), clock=lambda: NOW_S + 60)

    opened = archive.open(tmp_path / "a")
    for view, key in (("tasks", "task_id"), ("results", "result_id"),
                      ("sessions", "session_id")):
        from_duckdb = read_rows(tmp_path / "a", view)
        frame = opened.lazy(view).collect().to_arrow()
        from_polars = sorted(micros_columns(frame).to_pylist(), key=repr)
        assert from_duckdb == from_polars, view
        assert len({row[key] for row in from_duckdb}) == len(from_duckdb)

    tasks = {row["task_id"]: row for row in read_rows(tmp_path / "a", "tasks")}
    assert tasks["task-000002"]["status"] == "ERROR"
    assert tasks["task-000003"]["status"] == "DISPATCHED"  # the furthest of two unended rows
    assert tasks["task-000004"]["pod_hostname"] == "a"  # a deterministic tie-break


async def test_a_session_shows_its_latest_state_and_its_whole_sighting(tmp_path: Path) -> None:
    running = SessionInfo("s-1", "RUNNING", ("cpu",), T0)
    closed = SessionInfo("s-1", "CLOSED", ("cpu",), T0, closed_at=T0 + 5)
    await write(tmp_path / "a", Batch(sessions=[running]), clock=lambda: 100.0)
    await write(tmp_path / "a", Batch(sessions=[closed]), clock=lambda: 300.0)
    await write(tmp_path / "a", Batch(sessions=[running]), clock=lambda: 200.0)  # late replay

    [row] = read_rows(tmp_path / "a", "sessions")
    assert (row["status"], row["first_seen"], row["last_seen"]) == \
        ("CLOSED", 100_000_000, 300_000_000)


async def test_the_latest_result_state_wins(tmp_path: Path) -> None:
    await write(tmp_path / "a", results=[result(1), result(1, "CREATED")])
    [row] = read_rows(tmp_path / "a", "results")
    assert row["status"] == "COMPLETED"


async def test_escaped_session_ids_read_back_exactly(tmp_path: Path) -> None:
    odd = ["a/b", "..", "x y=1", "0012", "%41", ""]
    await write(tmp_path / "a", facts_batch(*(fact(n, session=s) for n, s in enumerate(odd))))
    assert sorted(row["session_id"] for row in read_rows(tmp_path / "a", "tasks")) == sorted(odd)
    frame = archive.open(tmp_path / "a").lazy("tasks").collect()
    assert sorted(frame["session_id"].to_list()) == sorted(odd)


# -- summaries and connections ---------------------------------------------------------------


async def test_the_watermark_is_the_latest_end(tmp_path: Path) -> None:
    await write(tmp_path / "a")
    assert archive.open(tmp_path / "a").watermark_us() is None
    await write(tmp_path / "a", facts_batch(fact(1), fact(7), fact(9, ended=False)))
    assert archive.open(tmp_path / "a").watermark_us() == fact(7).ended_at


async def test_stats_count_rows_and_bytes_per_table(tmp_path: Path) -> None:
    batch = full_batch(tasks=10)
    await write(tmp_path / "a", batch)
    await write(tmp_path / "a", batch)
    stats = archive.open(tmp_path / "a").stats()
    assert set(stats) == set(VIEWS)
    assert (stats["tasks"].files, stats["tasks"].rows) == (2, 20)
    assert stats["task_counts"].rows == 4 and stats["results"].rows == 0
    on_disk = sum(p.stat().st_size for p in (tmp_path / "a" / "tasks").rglob("*.parquet"))
    assert stats["tasks"].bytes == on_disk


async def test_the_context_manager_owns_and_closes_one_connection(tmp_path: Path) -> None:
    await write(tmp_path / "a", facts_batch(fact(1)))
    opened = archive.open(tmp_path / "a")
    with opened:
        connection = opened.connection
        assert opened.query("SELECT count(*) FROM tasks") == [(1,)]
    with pytest.raises(ArchiveError):
        _ = opened.connection
    with pytest.raises(duckdb.ConnectionException, match=r"(?i)closed"):
        connection.execute("SELECT 1")


async def test_a_connection_is_a_snapshot_of_the_segments(tmp_path: Path) -> None:
    await write(tmp_path / "a", facts_batch(fact(1)))
    opened = archive.open(tmp_path / "a")
    connection = opened.connect()
    try:
        await write(tmp_path / "a", facts_batch(fact(2)))
        assert connection.sql("SELECT count(*) FROM tasks").fetchall() == [(1,)]
        assert opened.query("SELECT count(*) FROM tasks") == [(2,)]
    finally:
        connection.close()


async def test_raw_lazy_frames_keep_every_row(tmp_path: Path) -> None:
    batch = facts_batch(fact(1), fact(2))
    await write(tmp_path / "a", batch, batch)
    opened = archive.open(tmp_path / "a")
    assert opened.lazy("tasks", raw=True).select(pl.len()).collect().item() == 4
    assert opened.lazy("tasks").select(pl.len()).collect().item() == 2
    assert opened.lazy("events").collect_schema() == pl.DataFrame(empty_table("events")).schema


async def test_an_archive_of_format_1_reads_its_new_columns_as_null_and_takes_new_rows(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "a"
    await write(directory, Batch(facts=TaskFacts.of([fact(1), fact(2)])))
    # Make it a format-1 archive: no application namespace or service in its tasks segments.
    for path in directory.rglob("tasks/*/*.parquet"):
        old = pq.read_table(path).drop_columns(["application_namespace", "application_service"])
        pq.write_table(old, path)
    (directory / layout.MARKER).write_text(json.dumps({"format": layout.FORMAT, "version": 1}))
    opened = archive.open(directory)
    assert opened.query("SELECT count(*), count(application_namespace) FROM tasks")[0] == (2, 0)
    with opened.connect() as connection:  # SELECT * gives the declared columns, in order
        connection.execute("SELECT * FROM tasks_raw LIMIT 0")
        columns = [column[0] for column in connection.description]
    assert columns == empty_table("tasks").schema.names
    frame = opened.lazy("tasks").collect()
    assert frame["application_service"].null_count() == 2 and frame.height == 2

    newer = dataclasses.replace(fact(3), application_namespace="ns", application_service="svc")
    await write(directory, Batch(facts=TaskFacts.of([newer])))  # the exporter takes it over
    assert json.loads((directory / layout.MARKER).read_text())["version"] == layout.FORMAT_VERSION
    rows = archive.open(directory).query(
        "SELECT task_id, application_namespace, application_service FROM tasks ORDER BY 1")
    assert rows == [("task-000001", None, None), ("task-000002", None, None),
                    ("task-000003", "ns", "svc")]
    frame = archive.open(directory).lazy("tasks").sort("task_id").collect()
    assert frame["application_namespace"].to_list() == [None, None, "ns"]
