"""Archive upkeep: compaction, retention and exports. Run it from one process at a time.

Compaction writes the merged segment (naming the segments it replaces in its metadata), renames
it into place, then retires the inputs: readers hide replaced segments from the rename on, so a
crash at any point loses nothing and duplicates nothing. Retention retires whole partitions.
Retired segments stay where they are for a grace period (retired.py): a connection made before
keeps reading them, a new one skips them; each pass then deletes those retired `grace` ago.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from armonik_observe.archive import layout, reader, retired, views
from armonik_observe.archive.layout import ArchiveError
from armonik_observe.archive.retired import DEFAULT_GRACE
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

    merged: int = 0  # input segments merged (and retired)
    written: int = 0  # merged segments written
    bytes_before: int = 0
    bytes_after: int = 0
    rows_before: int = 0
    rows_after: int = 0  # fewer when duplicate tasks or results were dropped
    retired: list[Path] = field(default_factory=list)  # superseded segments, readable for now
    removed: list[Path] = field(default_factory=list)  # purged past their grace; stray .tmp


# -- compaction -------------------------------------------------------------------------------


def compact(directory: Path, *, min_bytes: int = MIN_BYTES,
            max_merge_bytes: int = MAX_MERGE_BYTES, grace: timedelta = DEFAULT_GRACE,
            now: datetime | None = None) -> CompactionReport:
    """Merge each partition's segments smaller than `min_bytes`, deduplicating tasks and results.

    The inputs are retired at `now` (default: the current time), and so stay readable by
    connections made before for `grace`; segments retired `grace` before `now` are deleted.
    """
    layout.check_marker(directory)
    now_us = retired.micros(now or datetime.now(UTC))
    report = CompactionReport(removed=retired.purge(directory, grace, now_us))
    index, gone = SegmentIndex(directory), retired.read(directory)
    superseded: list[Path] = []
    for table in TABLES:
        for partition in layout.partitions(directory, table.name):
            superseded += _compact_partition(index, table, partition, gone, min_bytes,
                                             max_merge_bytes, report)
    # One ledger write for the pass: until it lands, the merged segments hide their inputs.
    report.retired = retired.retire(directory, superseded, now_us)
    return report


def _compact_partition(index: SegmentIndex, table: TableSpec, partition: Path,
                       gone: dict[str, int], min_bytes: int, max_merge_bytes: int,
                       report: CompactionReport) -> list[Path]:
    """Merge one partition's small segments; return the segments superseded, to retire."""
    live, superseded = index.partition_listing(table, partition, gone)
    # Superseded and not retired yet: left by a compaction stopped before its ledger write.
    replaced = [s.path for s in superseded]
    report.removed += _remove(list(stray_tmp_files(partition, time.time() - STRAY_TMP_SECONDS)))
    small = [segment for segment in live if segment.size < min_bytes]
    for bundle in _bundles(small, max_merge_bytes):
        _merge(table, partition, bundle, report)
        replaced += [segment.path for segment in bundle]
    return replaced


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
    """Write a bundle's rows as one segment: streamed a segment at a time unless some ids
    have several rows, which the table's view rule must then reduce to one."""
    paths = [segment.path for segment in bundle]
    rows_before = sum(segment.rows for segment in bundle)
    if _has_repeats(table, paths):
        merged = _deduplicate(table, pa.concat_tables([_read(table, path) for path in paths]))
        rows: pa.Table | Iterator[pa.Table] = merged
        rows_after = merged.num_rows
    else:
        rows, rows_after = (_read(table, path) for path in paths), rows_before
    path = write_segment(table, partition, rows, replaces=tuple(p.name for p in paths))
    report.merged += len(bundle)
    report.written += 1
    report.bytes_before += sum(segment.size for segment in bundle)
    report.bytes_after += path.stat().st_size
    report.rows_before += rows_before
    report.rows_after += rows_after


def _read(table: TableSpec, path: Path) -> pa.Table:
    """A segment's rows in the table's current schema (columns added since read as nulls)."""
    # A plain file read: pq.read_table would also add the partition column from the path.
    with pq.ParquetFile(path) as parquet:
        rows = parquet.read()
    columns = [rows[f.name].cast(f.type) if f.name in rows.column_names
               else pa.nulls(rows.num_rows, f.type) for f in table.schema]
    return pa.Table.from_arrays(columns, schema=table.schema)


def _has_repeats(table: TableSpec, paths: list[Path]) -> bool:
    """Whether some id has several rows across the segments (read from the id column alone)."""
    key = _VIEW_KEYS.get(table.name)
    if key is None:
        return False
    ids = pa.chunked_array([pq.read_table(path, columns=[key])[key] for path in paths])
    return bool(pc.count_distinct(ids).as_py() < len(ids))


# The id each deduplicated view keeps one row of.
_VIEW_KEYS = {"tasks": "task_id", "results": "result_id", "sessions": "session_id"}


def _deduplicate(table: TableSpec, rows: pa.Table) -> pa.Table:
    """Keep the rows the table's view would show: only the ids with several rows go through
    the view's SQL (DuckDB windows over a whole bundle cost ~40x its Parquet size in memory)."""
    ids = rows[_VIEW_KEYS[table.name]]
    counts = pc.value_counts(ids)
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    several = pc.is_in(ids, value_set=repeated)
    kept = _view_rows(table, rows.filter(several))
    return pa.concat_tables([rows.filter(pc.invert(several)), kept])


def _view_rows(table: TableSpec, rows: pa.Table) -> pa.Table:
    """The rows the table's view shows, by the same SQL."""
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


def apply_retention(directory: Path, older_than: timedelta, now: datetime | None = None, *,
                    grace: timedelta = DEFAULT_GRACE) -> list[Path]:
    """Retire the partitions whose newest row was observed before `now - older_than`.

    A partition is dated by the newest value of its table's observation column (observed_at, or
    last_seen for sessions) from the segments' Parquet statistics, not by file times, which copies
    and compaction reset; a segment without statistics, or unreadable, counts by its mtime. Its
    segments are retired, so stay readable by connections made before for `grace`; segments
    retired `grace` before `now` are deleted. Segments written later make a partition anew.
    """
    layout.check_marker(directory)
    now_us = retired.micros(now or datetime.now(UTC))
    cutoff = now_us - older_than // timedelta(microseconds=1)
    retired.purge(directory, grace, now_us)
    index, gone = SegmentIndex(directory), retired.read(directory)
    expired: list[Path] = []
    dropped: list[Path] = []
    for table in TABLES:
        for partition in layout.partitions(directory, table.name):
            files = [path for path in _files(partition)
                     if path.relative_to(directory).as_posix() not in gone]
            if files and _newest_us(index, table, files) < cutoff:
                expired.append(partition)
                dropped += [path for path in files if path.suffix == layout.SEGMENT_SUFFIX]
    retired.retire(directory, dropped, now_us)
    return expired


def _files(partition: Path) -> list[Path]:
    """The segments and in-flight writes of a partition."""
    try:
        return [*layout.segment_files(partition), *layout.tmp_files(partition)]
    except FileNotFoundError:  # purged meanwhile
        return []


def _newest_us(index: SegmentIndex, table: TableSpec, files: list[Path]) -> int:
    newest = 0
    for path in files:
        segment = index.check(table, path) if path.suffix == layout.SEGMENT_SUFFIX else None
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
