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
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from armonik_observe.archive import layout, stages
from armonik_observe.archive.layout import ArchiveError
from armonik_observe.archive.stages import Chunk, chunk_rows
from armonik_observe.pipeline import Batch

log = logging.getLogger(__name__)

# Which Batch field of records feeds which table (task facts come as columns).
RECORD_FIELDS = {"events": "events", "sessions": "sessions", "task_counts": "counts",
                 "health": "health", "results": "results"}


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
    by_table: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # rows, bytes written
    last_write_monotonic: float | None = None  # time.monotonic() of the last flush that wrote


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
        self._by_table: dict[str, list[int]] = {}  # table -> [rows, bytes] written
        self._last_flush: float | None = None
        self._last_write_monotonic: float | None = None
        self._last_error = ""
        self._requeues = 0  # times a failed write put rows back in the buffers
        self._writing: asyncio.Task[None] | None = None
        # Conversion and writing run in threads of their own, below the loop's CPU priority.
        self._convert_thread = ThreadPoolExecutor(1, "archive-convert",
                                                  initializer=stages.background)
        self._write_thread = ThreadPoolExecutor(1, "archive-write", initializer=stages.background)
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
                self._convert_thread, stages.convert_all, drained)
            self._dropped += converted.rejected
            await self._written()
            self._writing = asyncio.create_task(
                self._write(converted.segments, through, requeues, started),
                name="archive-write")

    async def _written(self) -> None:
        """Wait for the write in flight, if any (it never raises: it counts its errors)."""
        if self._writing is not None:
            await asyncio.shield(self._writing)

    async def _write(self, pending: list[stages.PartitionRows], through: int, requeues: int,
                     started: float) -> None:
        try:
            outcome = await asyncio.get_running_loop().run_in_executor(
                self._write_thread, stages.write_all, self.directory, pending)
        except Exception as error:  # a bug: keep the rows for the next flush, and say so
            log.exception("archive: write failed")
            outcome = stages.Outcome(unwritten=pending,
                                     error=f"{type(error).__name__}: {error}")
        self._account(outcome, time.perf_counter() - started)
        # Every task ended by `through` is on disk, unless a write put rows back since the
        # drain (they were not in it): the next checkpoint covers them.
        if outcome.error or outcome.unwritten or self._requeues != requeues or not through:
            return
        try:
            await asyncio.to_thread(layout.write_checkpoint, self.directory, through)
        except OSError as error:
            self._fail(layout.describe(error))

    def _account(self, outcome: stages.Outcome, seconds: float) -> None:
        self._last_flush = seconds
        if outcome.written:
            self._last_write_monotonic = time.monotonic()
            self._dropping = False
            self.flushed.set()
        for table, rows, size in outcome.written:
            self._rows += rows
            self._segments += 1
            self._bytes += size
            totals = self._by_table.setdefault(table, [0, 0])
            totals[0] += rows
            totals[1] += size
        if outcome.error:
            self._fail(outcome.error)
        self._requeue(outcome.unwritten)

    def _fail(self, error: str) -> None:
        self._errors += 1
        self._last_error = error
        log.warning("archive: cannot write to %s: %s; retrying at the next flush",
                    self.directory, error)

    def _requeue(self, pending: list[stages.PartitionRows]) -> None:
        """Put rows back in front of what arrived meanwhile, as Arrow batches."""
        for segment in pending:
            self._buffers.setdefault(segment.table.name, [])[:0] = segment.rows.to_batches()
            self._buffered += segment.rows.num_rows
            self._requeues += 1

    @property
    def stats(self) -> WriterStats:
        """A snapshot of the sink's counters."""
        return WriterStats(self._rows, self._segments, self._bytes, self._buffered,
                           self._dropped, self._errors, self._last_flush,
                           {table: (rows, size) for table, (rows, size) in self._by_table.items()},
                           self._last_write_monotonic)


