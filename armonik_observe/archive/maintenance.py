"""Archive upkeep: compaction, retention and exports. Run it from one process at a time.

Compaction writes the merged segment (naming the segments it replaces in its metadata), renames
it into place, then deletes the inputs: readers hide replaced segments from the rename on, so a
crash at any point loses nothing and duplicates nothing. Readers holding a connection made before
a compaction or retention may find a file gone; a new connection sees the new files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from armonik_observe.archive import layout, reader, views
from armonik_observe.archive.layout import ArchiveError
from armonik_observe.archive.schema import TABLES, TableSpec
from armonik_observe.archive.segments import (
    STRAY_TMP_SECONDS,
    Segment,
    SegmentIndex,
    stray_tmp_files,
    write_segment,
)

MIN_BYTES = 16 * 1024 * 1024  # segments smaller than this are merged
MAX_MERGE_BYTES = 256 * 1024 * 1024  # input of one merge, to bound its memory
EXPORT_BATCH_ROWS = 65_536


@dataclass(slots=True)
class CompactionReport:
    """What a compaction did."""

    merged: int = 0  # input segments merged (and deleted)
    written: int = 0  # merged segments written
    bytes_before: int = 0
    bytes_after: int = 0
    rows_before: int = 0
    rows_after: int = 0  # fewer when duplicate tasks or results were dropped
    removed: list[Path] = field(default_factory=list)  # leftovers of earlier interruptions


# -- compaction -------------------------------------------------------------------------------


def compact(directory: Path, *, min_bytes: int = MIN_BYTES,
            max_merge_bytes: int = MAX_MERGE_BYTES) -> CompactionReport:
    """Merge each partition's segments smaller than `min_bytes`, deduplicating tasks and results."""
    layout.check_marker(directory)
    index, report = SegmentIndex(directory), CompactionReport()
    for table in TABLES:
        for partition in layout.partitions(directory, table.name):
            _compact_partition(index, table, partition, min_bytes, max_merge_bytes, report)
    return report


def _compact_partition(index: SegmentIndex, table: TableSpec, partition: Path, min_bytes: int,
                       max_merge_bytes: int, report: CompactionReport) -> None:
    live, superseded = index.partition_listing(table, partition)
    report.removed += _remove([s.path for s in superseded])
    report.removed += _remove(list(stray_tmp_files(partition, time.time() - STRAY_TMP_SECONDS)))
    small = [segment for segment in live if segment.size < min_bytes]
    for bundle in _bundles(small, max_merge_bytes):
        _merge(table, partition, bundle, report)


def _bundles(segments: list[Segment], limit: int) -> Iterator[list[Segment]]:
    """Consecutive groups of at least two segments, each at most `limit` bytes in total."""
    bundle: list[Segment] = []
    for segment in segments:
        if bundle and sum(s.size for s in bundle) + segment.size > limit:
            if len(bundle) > 1:
                yield bundle
            bundle = []
        bundle.append(segment)
    if len(bundle) > 1:
        yield bundle


def _merge(table: TableSpec, partition: Path, bundle: list[Segment],
           report: CompactionReport) -> None:
    merged = pa.concat_tables([_read(segment.path) for segment in bundle],
                              promote_options="permissive")
    rows_before = merged.num_rows
    if table.name in views.DEDUPLICATED:
        merged = _deduplicate(table, merged)
    path = write_segment(table, partition, merged,
                         replaces=tuple(s.path.name for s in bundle))
    report.removed += _remove([segment.path for segment in bundle])
    report.merged += len(bundle)
    report.written += 1
    report.bytes_before += sum(segment.size for segment in bundle)
    report.bytes_after += path.stat().st_size
    report.rows_before += rows_before
    report.rows_after += merged.num_rows


def _read(path: Path) -> pa.Table:
    # A plain file read: pq.read_table would also add the partition column from the path.
    with pq.ParquetFile(path) as parquet:
        return parquet.read().replace_schema_metadata(None)


def _deduplicate(table: TableSpec, rows: pa.Table) -> pa.Table:
    """Keep the rows the table's view would show, by the same SQL."""
    connection = duckdb.connect(":memory:")
    try:
        connection.execute("SET TimeZone = 'UTC'")
        connection.register(f"{table.name}_raw", rows)
        views.install(connection, (table.name,))
        # Back in time order: timestamp columns compress several times better sorted than in
        # the view's id order. Table and column names are declared ones, never input.
        names = set(table.schema.names)
        order = next((c for c in ("ended_at", "observed_at", "last_seen") if c in names), None)
        query = f"SELECT * FROM {table.name}" + (f" ORDER BY {order}" if order else "")
        kept = connection.sql(query).to_arrow_table()
    finally:
        connection.close()
    return kept.cast(table.schema)


def _remove(paths: list[Path]) -> list[Path]:
    for path in paths:
        path.unlink(missing_ok=True)
    return paths


# -- retention --------------------------------------------------------------------------------


def apply_retention(directory: Path, older_than: timedelta,
                    now: datetime | None = None) -> list[Path]:
    """Delete the partitions whose newest row was observed before `now - older_than`.

    A partition is dated by the newest value of its table's observation column (observed_at, or
    last_seen for sessions) from the segments' Parquet statistics, not by file times, which copies
    and compaction reset; a segment without statistics, or unreadable, counts by its mtime.
    """
    layout.check_marker(directory)
    cutoff = _micros((now or datetime.now(UTC)) - older_than)
    index, removed = SegmentIndex(directory), []
    for table in TABLES:
        for partition in layout.partitions(directory, table.name):
            if _newest_us(index, table, partition) < cutoff:
                _remove_tree(partition)
                removed.append(partition)
    return removed


def _remove_tree(partition: Path) -> None:
    with contextlib.suppress(FileNotFoundError):  # removed meanwhile
        shutil.rmtree(partition)


def _newest_us(index: SegmentIndex, table: TableSpec, partition: Path) -> int:
    newest = 0
    for path in [*layout.segment_files(partition), *layout.tmp_files(partition)]:
        segment = index.check(table, path) if path.suffix == ".parquet" else None
        observed = _column_max_us(path, table.observed_column) if segment else None
        newest = max(newest, observed if observed is not None else _mtime_us(path))
    return newest


def _column_max_us(path: Path, column: str) -> int | None:
    try:
        with pq.ParquetFile(path) as parquet:
            metadata = parquet.metadata
    except (OSError, pa.ArrowException):
        return None
    # A Parquet column index counts leaf columns: lists and maps come before, so search by path.
    leaves = [metadata.schema.column(i).path for i in range(metadata.num_columns)]
    if column not in leaves:
        return None
    index = leaves.index(column)
    maxima = [_max_raw(metadata.row_group(g).column(index).statistics)
              for g in range(metadata.num_row_groups)]
    known = [value for value in maxima if value is not None]
    return max(known) if known and len(known) == len(maxima) else None


def _max_raw(statistics: Any) -> int | None:
    if statistics is None or not statistics.has_min_max:
        return None
    return int(statistics.max_raw)  # the INT64 microseconds of the timestamp


def _mtime_us(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns // 1000
    except FileNotFoundError:
        return 0


def _micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("retention needs an aware datetime for `now`")
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


# -- exports ----------------------------------------------------------------------------------


def export_duckdb(directory: Path, target: Path, *, overwrite: bool = False) -> Path:
    """Write one DuckDB database file holding every view of the archive as a table."""
    _check_target(target, overwrite)
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    connection = reader.open(directory).connect()
    try:
        connection.execute("ATTACH ? AS export", [str(tmp)])
        for table in TABLES:
            # Declared table names only: identifiers cannot be parameters.
            connection.execute(f"CREATE TABLE export.{table.name} AS SELECT * FROM {table.name}")
        connection.execute("DETACH export")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        connection.close()
    layout.fsync(tmp)
    os.replace(tmp, target)
    return target


def export_parquet(directory: Path, target_dir: Path, *, overwrite: bool = False) -> list[Path]:
    """Write a deduplicated Parquet dataset: one `<table>.parquet` per view, in `target_dir`."""
    targets = [target_dir / f"{table.name}.parquet" for table in TABLES]
    for target in targets:
        _check_target(target, overwrite)
    connection = reader.open(directory).connect()
    try:
        for table, target in zip(TABLES, targets, strict=True):
            _export_table(connection, table, target)
    finally:
        connection.close()
    return targets


def _export_table(connection: duckdb.DuckDBPyConnection, table: TableSpec, target: Path) -> None:
    # Declared table names only: identifiers cannot be parameters.
    rows = connection.sql(f"SELECT * FROM {table.name}").to_arrow_reader(EXPORT_BATCH_ROWS)

    def write(tmp: Path) -> None:
        with pq.ParquetWriter(str(tmp), table.schema, compression="zstd") as out:
            for batch in rows:
                out.write_batch(batch.cast(table.schema))

    layout.write_atomically(target, write)


def _check_target(target: Path, overwrite: bool) -> None:
    if target.exists() and not overwrite:
        raise ArchiveError(f"{target} already exists (overwrite it with --overwrite)")
