"""Querying an archive from the command line: SQL with table, JSON or CSV output, and exports."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import date, datetime
from pathlib import Path
from typing import Any

from armonik_observe.archive.layout import ArchiveError, describe
from armonik_observe.archive.maintenance import export_duckdb, export_parquet
from armonik_observe.archive.reader import open as open_archive


def run_sql(directory: Path, query: str, output: str) -> str:
    """Run one query over the archive's views; return it formatted as table, json or csv."""
    if not query.strip():
        raise ArchiveError("the query is empty")
    with open_archive(directory) as archive:
        cursor = archive.connection.execute(query)
        columns = [d[0] for d in cursor.description or []]
        rows = cursor.fetchall() if columns else []
    if output == "json":
        records = [{c: _finite(v) for c, v in zip(columns, row, strict=True)} for row in rows]
        return json.dumps(records, default=_json_value, allow_nan=False) + "\n"
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        writer.writerows(rows)
        return buffer.getvalue()
    return _table(columns, rows)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _finite(value: Any) -> Any:
    """NaN and infinities are not JSON: they become null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _table(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    cells = [columns, *([("" if v is None else str(v)) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + f"\n({len(rows)} row{'s' if len(rows) != 1 else ''})\n"


def export_archive(directory: Path, target: Path, kind: str, overwrite: bool) -> Path:
    """Export to a DuckDB file (`kind` duckdb) or a Parquet directory (`kind` parquet)."""
    try:
        if kind == "duckdb":
            return export_duckdb(directory, target, overwrite=overwrite)
        if kind == "parquet":
            export_parquet(directory, target, overwrite=overwrite)
            return target
    except OSError as error:
        raise ArchiveError(f"cannot export to {target}: {describe(error)}") from None
    raise ArchiveError(f"unknown export format {kind!r}")
