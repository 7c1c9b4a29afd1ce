"""The archive sink: buffers record batches on the event loop, writes Parquet segments off it.

`consume` only appends references to per-table buffers. A background task flushes them every
`flush_interval` seconds, or as soon as `max_buffer_rows` rows wait. A flush swaps the buffers
out and hands them to a worker thread, which converts them to Arrow in slices (pages of task
facts merged to a few thousand rows: each conversion call holds the GIL, so the event loop
never waits long for it) and splits them by partition. Another thread then writes one segment
per partition, while the next flush converts: Parquet encoding mostly runs without the GIL, so
the two use both cores. A failed write puts its rows back for the next flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias, cast

import pyarrow as pa
import pyarrow.compute as pc

from armonik_observe.archive import arrow, layout, schema, segments
from armonik_observe.archive.arrow import Records
from armonik_observe.archive.layout import ArchiveError
from armonik_observe.archive.schema import TableSpec
from armonik_observe.fact_columns import TaskFacts
from armonik_observe.pipeline import Batch

log = logging.getLogger(__name__)

# Which Batch field of records feeds which table (task facts come as columns).
RECORD_FIELDS = {"events": "events", "sessions": "sessions", "task_counts": "counts",
                 "health": "health", "results": "results"}


# Buffered rows: records or a page of task facts, with the time the sink took them; or rows
# already in Arrow (task facts converted by a flush that then could not write them).
Chunk: TypeAlias = Records | tuple[int, TaskFacts] | pa.RecordBatch


def chunk_rows(chunk: Chunk) -> int:
    """How many rows a buffered chunk holds."""
    return chunk.num_rows if isinstance(chunk, pa.RecordBatch) else len(chunk[1])


@dataclass(frozen=True, slots=True)
class WriterStats:
    """What the sink did so far (for the exporter's self-metrics)."""

    rows_written: int
    segments_written: int
    bytes_written: int
    buffered_rows: int
    dropped_rows: int
    write_errors: int
    last_flush_seconds: float | None


# Records freed per step once written: freeing is one C call that holds the GIL throughout.
RELEASE_ROWS = 2048


@dataclass(slots=True)
class _Group:
    """The buffered records of one partition of one table."""

    table: TableSpec
    value: str
    chunks: list[Chunk]


class ArchiveSink:
    """A pipeline sink that archives every record as Parquet segments under `directory`."""

    name = "archive"

    def __init__(
        self,
        directory: Path,
        *,
        flush_interval: float = 5.0,
        clock: Callable[[], float] = time.time,
        max_buffer_rows: int = 100_000,
        max_pending_rows: int | None = None,
        stop_timeout: float = 30.0,
    ) -> None:
        layout.prepare(directory)
        self.directory = directory
        self.flush_interval = flush_interval
        self.max_buffer_rows = max_buffer_rows
        # Rows kept while writes fail; beyond, new records are dropped and counted.
        self.max_pending_rows = max_pending_rows or 10 * max_buffer_rows
        self._clock = clock
        self._stop_timeout = stop_timeout
        self._buffers: dict[str, list[Chunk]] = {}
        self._tasks_ended_through = 0  # the newest task end consumed
        self._buffered = 0
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._stopped = False
        self._closed = False  # stopped, its threads gone: flush() refuses
        self._rows = self._segments = self._bytes = self._dropped = self._errors = 0
        self._last_flush: float | None = None
        self._last_error = ""
        self._requeues = 0  # times a failed write put rows back in the buffers
        self._writing: asyncio.Task[None] | None = None
        # Conversion and writing run in threads of their own, below the loop's CPU priority.
        self._convert_thread = ThreadPoolExecutor(1, "archive-convert", initializer=_background)
        self._write_thread = ThreadPoolExecutor(1, "archive-write", initializer=_background)
        self._dropping = False
        self.flushed = asyncio.Event()  # set after every flush that wrote; tests wait on it

    # -- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the background flushes."""
        if self._task is None and not self._stopped:
            self._task = asyncio.create_task(self._run(), name="archive-flush")

    async def stop(self) -> None:
        """Flush what is buffered and stop; idempotent, bounded by `stop_timeout`."""
        if self._stopped:
            return
        self._stopped = self._closing = True
        self._wake.set()
        try:
            async with asyncio.timeout(self._stop_timeout):
                if self._task is not None:
                    await self._task
                await self.flush()
        except TimeoutError:
            log.error("archive: stop took over %.1fs; %d rows not written",
                      self._stop_timeout, self._buffered)
        except ArchiveError as error:
            log.error("archive: final flush failed, %d rows not written: %s",
                      self._buffered, error)
        finally:
            self._task = None
            for thread in (self._convert_thread, self._write_thread):
                thread.shutdown(wait=False)  # each ends after the work it has in flight
            self._closed = True

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            self._wake.clear()
            if self._closing:
                return  # stop() does the last flush
            try:
                await self._hand_off()  # its write goes on while the next rows arrive
            except Exception:  # a bug must not stop the archive: log it, flush again later
                log.exception("archive: flush failed")

    # -- intake (on the event loop: appends only) ----------------------------------------

    def consume(self, batch: Batch) -> None:
        """Buffer a batch's records; the background task writes them."""
        now = self._now_us()
        if batch.facts:
            ends = int(batch.facts["ended_at"].max())
            self._tasks_ended_through = max(self._tasks_ended_through, ends)
            self._add("tasks", (now, batch.facts))
        for table, attribute in RECORD_FIELDS.items():
            records = getattr(batch, attribute)
            if records:
                # A copy of the list, not of the records: the publisher may reuse its list.
                self._add(table, (now, list(records)))

    def _add(self, table: str, chunk: Chunk) -> None:
        rows = chunk_rows(chunk)
        if self._buffered + rows > self.max_pending_rows:
            if not self._dropping:  # once until a flush writes again, not once per batch
                log.warning("archive: %d rows waiting for the disk, dropping new %s rows",
                            self._buffered, table)
            self._dropping = True
            self._dropped += rows
            return
        self._buffers.setdefault(table, []).append(chunk)
        self._buffered += rows
        if self._buffered >= self.max_buffer_rows:
            self._wake.set()

    def _now_us(self) -> int:
        return int(self._clock() * 1_000_000)

    # -- writing -------------------------------------------------------------------------

    async def flush(self) -> None:
        """Write everything buffered now; raise ArchiveError if some of it could not be."""
        if self._closed:
            raise ArchiveError(f"the archive sink of {self.directory} is stopped; "
                               f"{self._buffered} rows not written")
        errors = self._errors
        await self._hand_off()
        await self._written()
        if self._errors > errors:
            raise ArchiveError(f"cannot write to the archive at {self.directory}: "
                               f"{self._last_error}")

    async def _hand_off(self) -> None:
        """Convert what is buffered to Arrow, then have it written behind the write in flight.

        Converting holds the GIL; writing Parquet mostly does not. So a flush converts while
        the previous flush writes, on the other core, and returns once that write is done: one
        write in flight at most, which bounds the converted rows held in memory.
        """
        # Shielded: once drained, rows get converted and written even if the caller is
        # cancelled (a worker thread cannot be interrupted anyway).
        await asyncio.shield(asyncio.ensure_future(self._convert_and_queue()))

    async def _convert_and_queue(self) -> None:
        async with self._lock:  # one conversion at a time, and writes in drain order
            drained, self._buffers, self._buffered = self._buffers, {}, 0
            if not drained:
                return
            through, requeues = self._tasks_ended_through, self._requeues
            started = time.perf_counter()
            converted = await asyncio.get_running_loop().run_in_executor(
                self._convert_thread, _convert_all, drained)
            self._dropped += converted.rejected
            await self._written()
            self._writing = asyncio.create_task(
                self._write(converted.segments, through, requeues, started),
                name="archive-write")

    async def _written(self) -> None:
        """Wait for the write in flight, if any (it never raises: it counts its errors)."""
        if self._writing is not None:
            await asyncio.shield(self._writing)

    async def _write(self, pending: list[_Segment], through: int, requeues: int,
                     started: float) -> None:
        try:
            outcome = await asyncio.get_running_loop().run_in_executor(
                self._write_thread, _write_segments, self.directory, pending)
        except Exception as error:  # a bug: keep the rows for the next flush, and say so
            log.exception("archive: write failed")
            outcome = _Outcome(unwritten=pending, error=f"{type(error).__name__}: {error}")
        self._account(outcome, time.perf_counter() - started)
        # Every task ended by `through` is on disk, unless a write put rows back since the
        # drain (they were not in it): the next checkpoint covers them.
        if outcome.error or outcome.unwritten or self._requeues != requeues or not through:
            return
        try:
            await asyncio.to_thread(layout.write_checkpoint, self.directory, through)
        except OSError as error:
            self._fail(layout.describe(error))

    def _account(self, outcome: _Outcome, seconds: float) -> None:
        self._last_flush = seconds
        if outcome.written:
            self._dropping = False
            self.flushed.set()
        for rows, size in outcome.written:
            self._rows += rows
            self._segments += 1
            self._bytes += size
        if outcome.error:
            self._fail(outcome.error)
        self._requeue(outcome.unwritten)

    def _fail(self, error: str) -> None:
        self._errors += 1
        self._last_error = error
        log.warning("archive: cannot write to %s: %s; retrying at the next flush",
                    self.directory, error)

    def _requeue(self, pending: list[_Segment]) -> None:
        """Put rows back in front of what arrived meanwhile, as Arrow batches."""
        for segment in pending:
            self._buffers.setdefault(segment.table.name, [])[:0] = segment.rows.to_batches()
            self._buffered += segment.rows.num_rows
            self._requeues += 1

    @property
    def stats(self) -> WriterStats:
        """A snapshot of the sink's counters."""
        return WriterStats(self._rows, self._segments, self._bytes, self._buffered,
                           self._dropped, self._errors, self._last_flush)


# -- in worker threads -------------------------------------------------------------------

WORKER_NICENESS = 19


def _background() -> None:
    """Put the calling thread at the lowest CPU priority (Linux: niceness is per thread).

    A flush's conversion and the previous flush's Parquet write keep both cores busy; at the
    lowest priority either gives its core up as soon as the event loop's thread wakes (8
    alternated rounds of 1M rows: loop lag p99 1.1 to 1.4 ms, against 1.4 to 2.9 ms with the
    converter at the loop's priority and the writer at 10; throughput the same or better).
    """
    with contextlib.suppress(OSError, AttributeError):  # elsewhere: the same, unniced
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICENESS)


@dataclass(slots=True)
class _Segment:
    """Rows of one partition of one table, converted, to write as one segment."""

    table: TableSpec
    value: str
    rows: pa.Table


@dataclass(slots=True)
class _Outcome:
    """What a flush's write managed to do."""

    written: list[tuple[int, int]] = field(default_factory=list)  # (rows, bytes) per segment
    unwritten: list[_Segment] = field(default_factory=list)
    error: str = ""


@dataclass(slots=True)
class _Converted:
    """What a flush's conversion made of the drained buffers."""

    segments: list[_Segment] = field(default_factory=list)
    rejected: int = 0  # rows that do not convert to Arrow


def _convert_all(drained: dict[str, list[Chunk]]) -> _Converted:
    converted = _Converted()
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
                converted.segments.append(_Segment(group.table, group.value, _to_table(group)))
            except (ValueError, TypeError, AttributeError) as error:
                # Records Arrow cannot take (ArrowInvalid and ArrowTypeError derive from
                # ValueError and TypeError) will never convert: drop them, never retry them.
                converted.rejected += sum(map(chunk_rows, group.chunks))
                log.error("archive: dropped %s rows of partition %s that do not convert: %s",
                          group.table.name, group.value, error)
            _release(group.chunks)
    drained.clear()
    return converted


def _write_segments(directory: Path, pending: list[_Segment]) -> _Outcome:
    """Write each segment, in order, and let go of it here: freeing a large table's buffers
    takes milliseconds, which must not land on the event loop's thread."""
    outcome = _Outcome()
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
        outcome.written.append((segment.rows.num_rows, path.stat().st_size))
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
