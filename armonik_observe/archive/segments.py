"""Which segment files of an archive can be read: each is checked once per (path, size, mtime).

A segment is readable when its Parquet footer parses and its columns are declared ones, of the
declared types, the partition key among them. An unreadable one is reported by name and skipped,
so one bad file never breaks every query. A segment written by compaction names the segments it
replaces in its metadata; those are hidden from the moment it appears, so a compaction
interrupted before retiring them duplicates nothing. Retired segments (retired.py) are skipped.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from armonik_observe.archive import layout, retired
from armonik_observe.archive.schema import TableSpec

log = logging.getLogger(__name__)

REPLACES_KEY = b"armonik_observe.replaces"
ROW_GROUP_ROWS = 131_072  # DuckDB scans a file's row groups in parallel
ROW_GROUP_BYTES = 32 << 20  # and no more than this in memory while a merge writes one
# A `.tmp` file older than this is no write in flight but the leftover of a crash.
STRAY_TMP_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class Segment:
    """A readable segment file."""

    path: Path
    size: int
    rows: int
    replaces: tuple[str, ...] = ()  # names of segments of the same partition it supersedes


_Key = tuple[str, int, int]


class SegmentIndex:
    """Lists the readable segments of an archive's tables, remembering each file's verdict."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.warnings: list[str] = []
        self._verdicts: dict[_Key, Segment | None] = {}

    def segments(self, table: TableSpec) -> list[Segment]:
        """The live (readable, neither superseded nor retired) segments of a table."""
        gone = retired.read(self.directory)  # once for every partition
        found: list[Segment] = []
        for partition in layout.partitions(self.directory, table.name):
            found.extend(self.partition_listing(table, partition, gone)[0])
        return found

    def partition_listing(self, table: TableSpec, partition: Path,
                          gone: Mapping[str, int]) -> tuple[list[Segment], list[Segment]]:
        """The live segments of a partition, and those superseded by a compacted one.

        Live segments are neither superseded nor retired (in `gone`, from retired.read). A
        superseded segment may be retired already, or not yet if a compaction stopped between.
        """
        self._report_stray_tmp(partition)
        checked = [self.check(table, path) for path in _listing(partition)]
        readable = [segment for segment in checked if segment is not None]
        # Retired segments still name what they replaced: a compaction merged in turn never
        # brings back the inputs of the one before.
        hidden = {name for segment in readable for name in segment.replaces}
        live = [s for s in readable
                if s.path.name not in hidden and self._relative(s.path) not in gone]
        return live, [s for s in readable if s.path.name in hidden]

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.directory).as_posix()

    def check(self, table: TableSpec, path: Path) -> Segment | None:
        """The segment at `path`, or None (with a warning) when it cannot be read."""
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None  # removed since the listing (compaction, retention)
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._verdicts:
            self._verdicts[key] = self._inspect(table, path, stat.st_size)
        return self._verdicts[key]

    def _inspect(self, table: TableSpec, path: Path, size: int) -> Segment | None:
        try:
            with pq.ParquetFile(path) as parquet:
                metadata = parquet.metadata
                schema = parquet.schema_arrow
        except FileNotFoundError:
            return None
        except (OSError, pa.ArrowException, ValueError) as error:
            self._skip(path, f"unreadable Parquet ({_first_line(error)})")
            return None
        mismatch = _incompatibility(table, schema)
        if mismatch:
            self._skip(path, mismatch)
            return None
        return Segment(path, size, metadata.num_rows, _replaces(schema))

    def _skip(self, path: Path, reason: str) -> None:
        self.warn(f"skipped archive segment {path}: {reason}")

    def warn(self, message: str) -> None:
        """Record and log a problem once."""
        if message not in self.warnings:
            self.warnings.append(message)
            log.warning("%s", message)

    def _report_stray_tmp(self, partition: Path) -> None:
        horizon = time.time() - STRAY_TMP_SECONDS
        for path in stray_tmp_files(partition, horizon):
            self.warn(f"skipped archive segment {path}: unfinished write (a .tmp file)")


def write_segment(spec: TableSpec, partition: Path, rows: pa.Table | Iterable[pa.Table],
                  replaces: tuple[str, ...] = ()) -> Path:
    """Write rows of a table as a new segment of a partition, visible all at once; return its
    path. `rows` may come in parts (same schema), written as they come: a merge of many
    segments then holds about one row group in memory, not all of them."""
    metadata = {REPLACES_KEY: json.dumps(list(replaces)).encode()} if replaces else None
    target = partition / layout.segment_name()
    parts = iter([rows] if isinstance(rows, pa.Table) else rows)

    def write(tmp: Path) -> None:
        first = next(parts)
        # A path, not a Python file object: pyarrow then writes without holding the GIL.
        with pq.ParquetWriter(str(tmp), first.schema.with_metadata(metadata),
                              compression="zstd", **spec.parquet_options()) as writer:
            for part in _row_groups(first, parts):
                writer.write_table(part.replace_schema_metadata(metadata),
                                   row_group_size=ROW_GROUP_ROWS)

    layout.write_atomically(target, write)
    return target


def _row_groups(first: pa.Table, rest: Iterator[pa.Table]) -> Iterator[pa.Table]:
    """The parts regrouped into tables of about a row group (ROW_GROUP_ROWS, or fewer rows
    when they reach ROW_GROUP_BYTES in memory)."""
    pending, rows, size = [first], first.num_rows, first.nbytes
    for part in rest:
        if rows + part.num_rows > ROW_GROUP_ROWS or size >= ROW_GROUP_BYTES:
            yield pa.concat_tables(pending)
            pending, rows, size = [], 0, 0
        pending.append(part)
        rows, size = rows + part.num_rows, size + part.nbytes
    yield pa.concat_tables(pending)


def stray_tmp_files(partition: Path, horizon: float) -> Iterator[Path]:
    """The `.tmp` files of a partition last written before `horizon` (epoch seconds)."""
    try:
        found = layout.tmp_files(partition)
    except FileNotFoundError:  # an expired partition, emptied and removed since the listing
        return
    for path in found:
        try:
            if path.stat().st_mtime < horizon:
                yield path
        except FileNotFoundError:
            continue  # renamed into place meanwhile


def _listing(partition: Path) -> list[Path]:
    try:
        return layout.segment_files(partition)
    except FileNotFoundError:
        return []  # an expired partition, emptied and removed since the partition listing


def _incompatibility(table: TableSpec, schema: pa.Schema) -> str:
    """Why a file cannot join the table's view (empty when it can)."""
    declared = table.schema
    if table.partition_key not in schema.names:
        return f"no {table.partition_key} column"
    for field in schema:
        index = declared.get_field_index(field.name)
        if index < 0:
            return f"unknown column {field.name}"
        if not declared.field(index).type.equals(field.type):
            return (f"column {field.name} is {field.type}, "
                    f"declared {declared.field(index).type}")
    return ""


def _replaces(schema: pa.Schema) -> tuple[str, ...]:
    raw = (schema.metadata or {}).get(REPLACES_KEY)
    return tuple(json.loads(raw)) if raw else ()


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
