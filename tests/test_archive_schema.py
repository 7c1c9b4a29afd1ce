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
import pytest

from armonik_observe.archive.schema import (
    BY_NAME,
    OBSERVED,
    TABLES,
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
