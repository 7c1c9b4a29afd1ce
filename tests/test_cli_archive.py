"""`armonik-observe sql`, `archive export` and `serve --archive` as a user runs them: outputs that
parse, exports that hold the views, and one-line errors with exit code 2."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import shlex
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from test_archive_writer import fact, full_batch, result, write
from test_cli_serve import DEAD, assert_one_line_error, run_cli

from armonik_observe import archive
from armonik_observe.archive.schema import TABLES, TASKS
from armonik_observe.fact_columns import TaskFacts
from armonik_observe.pipeline import Batch

EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A small archive: two sessions, every table, and a replayed page (raw rows > view rows)."""
    directory = tmp_path_factory.mktemp("cli") / "archive"
    first = full_batch(session="s-1", tasks=5)
    second = full_batch(session="s-2", tasks=0)
    second.facts = TaskFacts.of([fact(n, session="s-2", status="ERROR", error="boom")
                                 for n in range(5, 8)])
    replay = Batch(facts=TaskFacts.of(first.facts.records()[:2]))
    asyncio.run(write(directory, first, second, replay,
                      results=[result(1), result(2, "CREATED"), result(3, session="s-2")]))
    yield directory


def view(directory: Path, sql: str) -> list[dict[str, Any]]:
    with archive.open(directory) as opened:
        return opened.connection.sql(sql).to_arrow_table().to_pylist()


def count(directory: Path, table: str) -> int:
    value: int = archive.open(directory).query(f"SELECT count(*) FROM {table}")[0][0]
    return value


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def sql(directory: Path, query: str, *options: str) -> Any:
    return run_cli("sql", "--archive", str(directory), *options, query)


# -- sql ----------------------------------------------------------------------------------------

QUERY = "SELECT task_id, session_id, status, ended_at, priority FROM tasks ORDER BY task_id"


def test_the_table_output_has_a_header_a_rule_and_a_row_count(archived: Path) -> None:
    done = sql(archived, QUERY)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["task_id", "session_id", "status", "ended_at", "priority"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[-1] == "(8 rows)"
    body = lines[2:-1]
    assert [line.split()[:3] for line in body] == [
        [f"task-{n:06d}", "s-1" if n < 5 else "s-2", "COMPLETED" if n < 5 else "ERROR"]
        for n in range(8)]
    # Times are shown in UTC, whatever the machine's zone.
    ended_at = fact(0).ended_at
    assert ended_at is not None
    assert str(EPOCH + timedelta(microseconds=ended_at)) in body[0]


def test_the_json_output_parses_with_the_right_keys_and_values(archived: Path) -> None:
    done = sql(archived, "SELECT * FROM tasks ORDER BY task_id", "-o", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [list(row) for row in rows] == [TASKS.schema.names] * 8
    expected = view(archived, "SELECT * FROM tasks ORDER BY task_id")
    assert [row["task_id"] for row in rows] == [row["task_id"] for row in expected]
    for got, want in zip(rows, expected, strict=True):
        for name in ("created_at", "ended_at", "observed_at"):
            assert micros(datetime.fromisoformat(got[name])) == micros(want[name])
        for name in ("session_id", "status", "error", "priority", "max_duration_seconds",
                     "creation_to_end_seconds", "parent_task_ids", "data_dependencies"):
            assert got[name] == want[name], name
        assert got["options"] == {"engine": "fast", "zone": "eu-west"}


def test_the_csv_output_parses_with_a_header(archived: Path) -> None:
    done = sql(archived, QUERY, "-o", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))
    assert rows[0] == ["task_id", "session_id", "status", "ended_at", "priority"]
    expected = view(archived, QUERY)
    assert [row[0] for row in rows[1:]] == [row["task_id"] for row in expected]
    assert [int(row[4]) for row in rows[1:]] == [row["priority"] for row in expected]
    assert [micros(datetime.fromisoformat(row[3])) for row in rows[1:]] == [
        micros(row["ended_at"]) for row in expected]


@pytest.mark.parametrize("query", ["SELEC task_id FROM tasks", "SELECT * FROM no_such_table"])
def test_a_bad_query_is_one_line_and_exit_2(archived: Path, query: str) -> None:
    done = sql(archived, query)
    assert_one_line_error(done, "armonik-observe: error:")
    assert done.stdout == ""


def test_an_empty_query_is_one_line_and_exit_2(archived: Path) -> None:
    assert_one_line_error(sql(archived, ""))


def test_a_directory_that_is_no_archive_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert_one_line_error(sql(tmp_path, "SELECT 1"), str(tmp_path), "not an armonik-observe")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    assert_one_line_error(sql(missing, "SELECT 1"), str(missing))
    assert not missing.exists()


def test_several_statements_show_each_result_in_a_table(archived: Path) -> None:
    done = sql(archived, "SELECT count(*) AS tasks FROM tasks; SELECT 'two' AS second;")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n\n") == ["tasks\n-----\n8\n(1 row)",
                                         "second\n------\ntwo\n(1 row)\n"]


@pytest.mark.parametrize("output", ["json", "csv"])
def test_several_statements_are_refused_by_json_and_csv(archived: Path, output: str) -> None:
    done = sql(archived, "SELECT 1; SELECT 2", "-o", output)
    assert_one_line_error(done, f"-o {output} takes one statement", "holds 2")
    assert done.stdout == ""


def test_the_csv_output_writes_maps_and_lists_as_json(archived: Path) -> None:
    query = "SELECT task_id, options, parent_task_ids, data_dependencies FROM tasks ORDER BY 1"
    done = sql(archived, query, "-o", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    expected = view(archived, query)
    assert len(rows) == len(expected) == 8
    for got, want in zip(rows, expected, strict=True):
        for name in ("options", "parent_task_ids", "data_dependencies"):
            value = want[name]  # Arrow gives a map as a list of (key, value) pairs
            assert json.loads(got[name]) == (dict(value) if name == "options" else value)
    assert json.loads(rows[0]["options"]) == {"engine": "fast", "zone": "eu-west"}


def test_show_tables_lists_the_views_and_raw_tables_only(archived: Path) -> None:
    done = sql(archived, "SHOW TABLES", "-o", "json")
    assert done.returncode == 0, done.stderr
    names = {row["name"] for row in json.loads(done.stdout)}
    assert names == {t.name for t in TABLES} | {f"{t.name}_raw" for t in TABLES}


def test_sql_help_lists_the_tables_and_examples_that_run(archived: Path) -> None:
    done = run_cli("sql", "--help")
    assert done.returncode == 0, done.stderr
    listed = done.stdout.split("Tables")[1].split("Examples")[0]
    assert [line.split()[0] for line in listed.strip().splitlines()[1:]] == [
        t.name for t in TABLES]
    examples = [line.strip() for line in done.stdout.splitlines()
                if line.strip().startswith("armonik-observe sql ")]
    assert len(examples) == 2
    for example in examples:
        args = shlex.split(example.replace("demo-archive", str(archived)).split(" > ")[0])
        ran = run_cli(*args[1:])
        assert ran.returncode == 0, (example, ran.stderr)
        assert len(ran.stdout.splitlines()) > 2, example


# -- archive export -----------------------------------------------------------------------------


def export(directory: Path, target: Path, *options: str) -> Any:
    return run_cli("archive", "export", "--archive", str(directory), "--to", str(target),
                   *options)


def assert_refused_then_overwritten(archived: Path, target: Path, existing: Path,
                                    *options: str) -> None:
    """A second export onto `target` needs --overwrite; `existing` is one file it writes."""
    before = existing.stat().st_mtime_ns
    assert_one_line_error(export(archived, target, *options), str(existing), "already exists")
    assert existing.stat().st_mtime_ns == before
    done = export(archived, target, *options, "--overwrite")
    assert done.returncode == 0, done.stderr
    assert existing.stat().st_mtime_ns != before


def test_the_duckdb_export_holds_every_view_as_a_table(archived: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.duckdb"
    done = export(archived, target)
    assert done.returncode == 0, done.stderr
    assert str(target) in done.stdout
    assert not list(tmp_path.glob("*.tmp"))
    with duckdb.connect(str(target), read_only=True) as exported:
        for table in TABLES:
            relation = exported.sql(f"SELECT * FROM {table.name}")
            assert relation.columns == table.schema.names, table.name
            assert len(relation.fetchall()) == count(archived, table.name), table.name
        got = exported.sql("SELECT * FROM tasks ORDER BY task_id").to_arrow_table().to_pylist()
    assert got == view(archived, "SELECT * FROM tasks ORDER BY task_id")
    assert count(archived, "tasks_raw") > count(archived, "tasks") == 8  # deduplicated
    assert_refused_then_overwritten(archived, target, target)


def test_the_parquet_export_is_one_readable_file_per_view(archived: Path, tmp_path: Path) -> None:
    target = tmp_path / "dataset"
    done = export(archived, target, "--format", "parquet")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in target.iterdir()) == sorted(
        f"{table.name}.parquet" for table in TABLES)
    for table in TABLES:
        read = pq.read_table(target / f"{table.name}.parquet")
        assert read.schema.names == table.schema.names
        assert read.num_rows == count(archived, table.name), table.name
    tasks = pq.read_table(target / "tasks.parquet").sort_by("task_id").to_pylist()
    assert tasks == view(archived, "SELECT * FROM tasks ORDER BY task_id")
    assert_refused_then_overwritten(archived, target, target / "tasks.parquet",
                                    "--format", "parquet")


def test_exporting_a_directory_that_is_no_archive_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    done = export(tmp_path, tmp_path / "out.duckdb")
    assert_one_line_error(done, str(tmp_path), "not an armonik-observe")
    assert not (tmp_path / "out.duckdb").exists()


@pytest.mark.parametrize("kind", ["duckdb", "parquet"])
def test_an_unwritable_target_is_one_line_and_exit_2(
    archived: Path, tmp_path: Path, kind: str
) -> None:
    (tmp_path / "file").write_text("")  # not a directory, for root too
    target = tmp_path / "file" / ("out.duckdb" if kind == "duckdb" else "dataset")
    assert_one_line_error(export(archived, target, "--format", kind), str(tmp_path / "file"))


# -- serve --archive ----------------------------------------------------------------------------


def serve(*args: str) -> Any:
    return run_cli("serve", "-e", DEAD, "--listen", "127.0.0.1:0", "--duration", "5", *args)


def test_serve_refuses_an_archive_it_cannot_write(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")  # root ignores permission bits, not a file in the path
    target = tmp_path / "file" / "archive"
    assert_one_line_error(serve("--archive", str(target)), str(target), "cannot write")


def test_serve_refuses_a_directory_that_is_no_archive(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert_one_line_error(serve("--archive", str(tmp_path)), str(tmp_path),
                          "not an armonik-observe archive")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(("option", "value"), [("--archive-retention", "3x"),
                                               ("--archive-flush-interval", "0")])
def test_serve_refuses_bad_archive_options(tmp_path: Path, option: str, value: str) -> None:
    target = tmp_path / "archive"
    assert_one_line_error(serve("--archive", str(target), option, value), option)
    assert not target.exists()  # refused before anything was created
