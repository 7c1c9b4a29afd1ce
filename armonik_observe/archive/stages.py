"""What a flush does off the event loop: buffered rows to Arrow tables by partition (in one
thread), then each written as a segment (in another).

Both threads run at the lowest CPU priority. Conversion holds the GIL for each pyarrow call, so
rows go in slices of a few thousand (arrow.py), and whatever was converted is freed here a slice
at a time: freeing many Python objects in one call holds the GIL just as long.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias, cast

import pyarrow as pa
import pyarrow.compute as pc

from armonik_observe.archive import arrow, layout, schema, segments
from armonik_observe.archive.arrow import Records
from armonik_observe.archive.schema import TableSpec
from armonik_observe.fact_columns import TaskFacts

log = logging.getLogger(__name__)

# Buffered rows: records or a page of task facts, with the time the sink took them; or rows
# already in Arrow (task facts converted by a flush that then could not write them).
Chunk: TypeAlias = Records | tuple[int, TaskFacts] | pa.RecordBatch


def chunk_rows(chunk: Chunk) -> int:
    """How many rows a buffered chunk holds."""
    return chunk.num_rows if isinstance(chunk, pa.RecordBatch) else len(chunk[1])


# Records freed per step once written: freeing is one C call that holds the GIL throughout.
RELEASE_ROWS = 2048


@dataclass(slots=True)
class _Group:
    """The buffered records of one partition of one table."""

    table: TableSpec
    value: str
    chunks: list[Chunk]


WORKER_NICENESS = 19


def background() -> None:
    """Put the calling thread at the lowest CPU priority (Linux: niceness is per thread).

    A flush's conversion and the previous flush's Parquet write keep both cores busy; at the
    lowest priority either gives its core up as soon as the event loop's thread wakes (8
    alternated rounds of 1M rows: loop lag p99 1.1 to 1.4 ms, against 1.4 to 2.9 ms with the
    converter at the loop's priority and the writer at 10; throughput the same or better).
    """
    with contextlib.suppress(OSError, AttributeError):  # elsewhere: the same, unniced
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICENESS)


@dataclass(slots=True)
class PartitionRows:
    """Rows of one partition of one table, converted, to write as one segment."""

    table: TableSpec
    value: str
    rows: pa.Table


@dataclass(slots=True)
class Outcome:
    """What a flush's write managed to do."""

    # (table, rows, bytes) per segment written
    written: list[tuple[str, int, int]] = field(default_factory=list)
    unwritten: list[PartitionRows] = field(default_factory=list)
    error: str = ""


@dataclass(slots=True)
class Converted:
    """What a flush's conversion made of the drained buffers."""

    segments: list[PartitionRows] = field(default_factory=list)
    rejected: int = 0  # rows that do not convert to Arrow


def convert_all(drained: dict[str, list[Chunk]]) -> Converted:
    converted = Converted()
    for table, chunks in drained.items():
        rows = sum(map(chunk_rows, chunks))  # counted first: splitting takes the chunks out
        try:
            groups = _by_partition(schema.spec(table), chunks)
        except (ValueError, TypeError) as error:  # task facts that do not convert: see below
            converted.rejected += rows
            log.error("archive: dropped %d %s rows that do not convert: %s", rows, table, error)
            continue
        while groups:
            group = groups.pop()
            try:
                converted.segments.append(PartitionRows(group.table, group.value, _to_table(group)))
            except (ValueError, TypeError, AttributeError) as error:
                # Records Arrow cannot take (ArrowInvalid and ArrowTypeError derive from
                # ValueError and TypeError) will never convert: drop them, never retry them.
                converted.rejected += sum(map(chunk_rows, group.chunks))
                log.error("archive: dropped %s rows of partition %s that do not convert: %s",
                          group.table.name, group.value, error)
            _release(group.chunks)
    drained.clear()
    return converted


def write_all(directory: Path, pending: list[PartitionRows]) -> Outcome:
    """Write each segment, in order, and let go of it here: freeing a large table's buffers
    takes milliseconds, which must not land on the event loop's thread."""
    outcome = Outcome()
    pending.reverse()
    while pending:
        segment = pending.pop()
        partition = layout.partition_dir(directory, segment.table.name,
                                         segment.table.partition_key, segment.value)
        try:
            path = segments.write_segment(segment.table, partition, segment.rows)
        except OSError as error:
            outcome.error = layout.describe(error)
            outcome.unwritten = [segment, *reversed(pending)]
            pending.clear()
            break
        outcome.written.append((segment.table.name, segment.rows.num_rows,
                                path.stat().st_size))
    return outcome


def _release(chunks: list[Chunk]) -> None:
    """Free converted records a slice at a time, here rather than on the loop: freeing 200k
    records at once holds the GIL (and so stalls the event loop) for about 80 ms."""
    while chunks:
        chunk = chunks.pop()
        if isinstance(chunk, tuple):  # Arrow batches free their buffers in one go
            rows = chunk[1]
            while rows:
                del rows[-RELEASE_ROWS:]


def _by_partition(table: TableSpec, chunks: list[Chunk]) -> list[_Group]:
    groups: dict[str, _Group] = {}
    for value, part in _partition_parts(table, chunks):
        groups.setdefault(value, _Group(table, value, [])).chunks.append(part)
    return list(groups.values())


def _partition_parts(table: TableSpec, chunks: list[Chunk]) -> Iterator[tuple[str, Chunk]]:
    """Each chunk's rows by partition; pages of task facts become Arrow batches on the way.

    Chunks are taken out of `chunks` as they go, so each page is freed once converted: freeing
    200k rows' values at once would hold the GIL for some 80 ms.
    """
    pages: list[tuple[int, TaskFacts]] = []
    chunks.reverse()
    while chunks:
        chunk = chunks.pop()
        if isinstance(chunk, pa.RecordBatch):  # converted by an earlier flush that failed
            yield from split_batch(chunk, table.partition_key).items()
        elif isinstance(chunk[1], TaskFacts):
            pages.append((chunk[0], chunk[1]))
        else:
            yield from _split_records(table, cast(Records, chunk)).items()
    for batch in arrow.facts_batches(pages):
        yield from split_batch(batch, table.partition_key).items()


def _split_records(table: TableSpec, chunk: Records) -> dict[str, Chunk]:
    key = arrow.partition_function(table)
    seen, records = chunk
    split: dict[str, list[Any]] = {}
    for record in records:
        split.setdefault(key(record), []).append(record)
    return {value: (seen, rows) for value, rows in split.items()}


def split_batch(batch: pa.RecordBatch, column: str) -> dict[str, Chunk]:
    """A batch's rows by the value of one (string) column."""
    values = batch.column(column)
    distinct = pc.unique(values).to_pylist()
    if len(distinct) == 1:
        return {distinct[0]: batch}
    return {value: batch.filter(pc.equal(values, value)) for value in distinct}


def _to_table(group: _Group) -> pa.Table:
    batches = [chunk for chunk in group.chunks if isinstance(chunk, pa.RecordBatch)]
    records = [chunk for chunk in group.chunks if isinstance(chunk, tuple)]
    if records:
        batches += arrow.to_arrow(group.table, records).to_batches()
    return pa.Table.from_batches(batches, schema=group.table.schema)
