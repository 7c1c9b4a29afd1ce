"""The archive's schemas are declared once: the golden snapshot and docs/archive.md follow them.

After an intended schema change, regenerate both with

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_archive_schema.py
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from armonik_observe.archive import segments
from armonik_observe.archive.schema import (
    BY_NAME,
    OBSERVED,
    OPTIONS,
    STRINGS,
    TABLES,
    TIMESTAMP,
    TableSpec,
    render_markdown,
    render_text,
)
from armonik_observe.model import (
    HealthSample,
    ResultRecord,
    SessionEvent,
    SessionInfo,
    TaskFact,
)

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "archive_schema.txt"
DOCS = ROOT / "docs" / "archive.md"


def check_generated(path: Path, want: str) -> None:
    """Compare a committed file with what the code generates; UPDATE_GOLDEN=1 rewrites it."""
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(want, encoding="utf-8")
    got = path.read_text(encoding="utf-8") if path.exists() else ""
    if got != want:
        diff = "\n".join(difflib.unified_diff(got.splitlines(), want.splitlines(),
                                              str(path.relative_to(ROOT)), "generated",
                                              lineterm=""))
        pytest.fail(f"{path.name} is out of date (UPDATE_GOLDEN=1 regenerates it)\n{diff}",
                    pytrace=False)


def test_the_schemas_match_the_snapshot() -> None:
    check_generated(GOLDEN, render_text())


def test_the_docs_are_generated_from_the_schemas() -> None:
    check_generated(DOCS, render_markdown())


@pytest.mark.parametrize(("table", "record"), [
    ("tasks", TaskFact), ("events", SessionEvent), ("sessions", SessionInfo),
    ("results", ResultRecord), ("health", HealthSample),
])
def test_every_record_field_has_a_column(table: str, record: type) -> None:
    sources = {column.attribute for column in BY_NAME[table].columns}
    assert {field.name for field in dataclasses.fields(record)} <= sources


def test_the_conventions_hold() -> None:
    for table in TABLES:
        for column in table.columns:
            if column.name.endswith(("_at", "_seen")):
                assert column.type == pa.timestamp("us", tz="UTC"), column.name
            if column.micros_to_seconds:
                assert column.name.endswith("_seconds") and column.type == pa.float64()
        assert table.partition_key in table.schema.names
        assert table.observed_column in table.schema.names
        assert OBSERVED not in table.schema.names


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_written_segments_use_the_declared_encodings_and_statistics(table: TableSpec,
                                                                    tmp_path: Path) -> None:
    # pyarrow ignores a column path it does not know: check every declared one took effect.
    options = table.parquet_options()
    written = segments.write_segment(table, tmp_path, _one_row(table))
    row_group = pq.ParquetFile(written).metadata.row_group(0)
    columns = {row_group.column(i).path_in_schema: row_group.column(i)
               for i in range(row_group.num_columns)}
    assert set(columns) == set(options["use_dictionary"]) | set(options["column_encoding"])
    for path, column in columns.items():
        if path in options["column_encoding"]:
            assert options["column_encoding"][path] in column.encodings, path
        elif column.physical_type != "BOOLEAN":  # Parquet has no dictionary for booleans
            assert any("DICTIONARY" in e for e in column.encodings), path
        assert column.is_stats_set is (path in options["write_statistics"]), path
    assert table.observed_column in options["write_statistics"]  # retention reads them


def _one_row(table: TableSpec) -> pa.Table:
    """One row with every value set (nested columns with one element)."""
    values = {pa.string(): "x", pa.float64(): 1.5, pa.int64(): 1, pa.int32(): 1,
              pa.bool_(): True, pa.date32(): 1, TIMESTAMP: 1_700_000_000_000_000,
              STRINGS: ["x"], OPTIONS: [("k", "v")]}
    return pa.table({c.name: pa.array([values[c.type]], c.type) for c in table.columns})
