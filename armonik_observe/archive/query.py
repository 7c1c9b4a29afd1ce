"""Querying an archive from the command line: SQL with table, JSON or CSV output, and exports."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb

from armonik_observe.archive.layout import ArchiveError, describe
from armonik_observe.archive.maintenance import export_duckdb, export_parquet
from armonik_observe.archive.reader import open as open_archive
from armonik_observe.archive.schema import TABLES

_EXAMPLES = (
    'sql --archive demo-archive "SELECT partition_id, status, count(*) FROM tasks GROUP BY ALL"',
    'sql --archive demo-archive -o csv "SELECT * FROM sessions" > sessions.csv',
)


def sql_help() -> str:
    """The `sql` command's help: what it does, the tables it reads, two examples."""
    width = max(len(table.name) for table in TABLES)
    tables = "\n".join(f"  {table.name.ljust(width)}  {table.doc.split(';')[0].rstrip('.')}"
                       for table in TABLES)
    examples = "\n".join(f"  armonik-observe {example}" for example in _EXAMPLES)
    # \b keeps click from rewrapping the blocks.
    return ("Run SQL (DuckDB's dialect) over the archive's views. Several statements, ';' "
            "between them, show each result in turn (-o table only).\n\n"
            f"\b\nTables (each a view; <table>_raw holds every row as written):\n{tables}\n\n"
            f"\b\nExamples:\n{examples}\n\n"
            "SHOW TABLES and DESCRIBE tasks list them and their columns, which "
            "docs/archive.md describes.")


def run_sql(directory: Path, query: str, output: str) -> str:
    """Run a query over the archive's views; return it formatted as table, json or csv.

    The table output shows the result of each statement in turn; json and csv, one result
    per output, take a single statement.
    """
    statements = duckdb.extract_statements(query)
    if not statements:
        raise ArchiveError("the query is empty")
    if len(statements) > 1 and output != "table":
        raise ArchiveError(f"-o {output} takes one statement, the query holds "
                           f"{len(statements)}: run them one at a time, or use -o table")
    with open_archive(directory) as archive:
        results = [_fetch(archive.connection.execute(statement)) for statement in statements]
    if output == "json":
        ((columns, rows),) = results
        records = [{c: _finite(v) for c, v in zip(columns, row, strict=True)} for row in rows]
        return json.dumps(records, default=_json_value, allow_nan=False) + "\n"
    if output == "csv":
        ((columns, rows),) = results
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        writer.writerows([_cell(value) for value in row] for row in rows)
        return buffer.getvalue()
    return "\n".join(_table(columns, rows) for columns, rows in results)


def _fetch(cursor: duckdb.DuckDBPyConnection) -> tuple[list[str], list[tuple[Any, ...]]]:
    columns = [d[0] for d in cursor.description or []]
    return columns, cursor.fetchall() if columns else []


def _cell(value: Any) -> Any:
    """A value as a CSV or table cell: maps, structs and lists as JSON text, not Python's."""
    if isinstance(value, dict | list | tuple):
        return json.dumps(_finite(value), default=_json_value, allow_nan=False)
    return "" if value is None else value


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _finite(value: Any) -> Any:
    """NaN and infinities are not JSON: they become null, in maps and lists too."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _table(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    cells = [columns, *([str(_cell(v)) for v in row] for row in rows)]
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
