"""The archive as the exporter runs it: one pipeline sink over the writer and its upkeep.

The writer (`ArchiveSink`) turns batches into Parquet segments; the upkeep compacts, expires and
measures the archive every few minutes. This sink starts and stops both, and reports their
figures as its self-metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path

from armonik_observe.archive.retired import DEFAULT_GRACE
from armonik_observe.archive.upkeep import ArchiveUpkeep
from armonik_observe.archive.writer import ArchiveSink
from armonik_observe.exporters.exposition import Family
from armonik_observe.exporters.state_metrics import family
from armonik_observe.pipeline import Batch, Needs


class ArchiveOutput:
    """Archives every record (with every task column, results and result events)."""

    name = "archive"
    # The archive keeps the lists only ListTasksDetailed carries, and every result.
    needs = Needs(detailed_facts=True, results=True, all_events=True)

    def __init__(self, directory: Path, *, flush_interval: float = 5.0,
                 retention: timedelta | None = None, grace: timedelta = DEFAULT_GRACE,
                 stop_timeout: float = 30.0) -> None:
        self.writer = ArchiveSink(directory, flush_interval=flush_interval,
                                  stop_timeout=stop_timeout)
        self.upkeep = ArchiveUpkeep(directory, retention=retention, grace=grace,
                                    on_measured=self._measured)
        self._written_at_measure: Mapping[str, tuple[int, int]] = {}
        self._stop_upkeep = asyncio.Event()
        self._upkeep: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the writer's flushes, then the upkeep."""
        await self.writer.start()
        self._upkeep = asyncio.create_task(self.upkeep.run(self._stop_upkeep),
                                           name="archive-upkeep")

    def consume(self, batch: Batch) -> None:
        """Buffer a batch for the next flush."""
        self.writer.consume(batch)

    async def flush(self) -> None:
        """Write what is buffered."""
        await self.writer.flush()

    async def stop(self) -> None:
        """Stop the upkeep (a round in progress finishes), then flush and stop the writer."""
        self._stop_upkeep.set()
        upkeep, self._upkeep = self._upkeep, None
        if upkeep is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await upkeep
        await self.writer.stop()

    def _measured(self) -> None:
        """The upkeep measured the tables: what the writer wrote from now on adds to that."""
        self._written_at_measure = self.writer.stats.by_table

    def sizes(self) -> dict[str, tuple[int, int]]:
        """Rows and bytes of each table: the upkeep's last measure (every 5 minutes) plus what
        the writer wrote since, so the figures are current between two measures."""
        written, before = self.writer.stats.by_table, self._written_at_measure
        tables = set(self.upkeep.stats) | set(written)
        sizes = {}
        for name in tables:
            measured = self.upkeep.stats.get(name)
            rows, size = written.get(name, (0, 0))
            since_rows, since_bytes = before.get(name, (0, 0))
            sizes[name] = ((measured.rows if measured else 0) + rows - since_rows,
                           (measured.bytes if measured else 0) + size - since_bytes)
        return sizes

    def self_metrics(self) -> Iterator[Family]:
        """Size of the archive's tables and the writer's counters."""
        sizes, writer = self.sizes(), self.writer.stats
        yield family("armonik_observe_archive_rows",
                     _by_table({name: rows for name, (rows, _) in sizes.items()}))
        yield family("armonik_observe_archive_bytes",
                     _by_table({name: size for name, (_, size) in sizes.items()}))
        yield family("armonik_observe_archive_rows_written", [((), float(writer.rows_written))])
        yield family("armonik_observe_archive_dropped_rows", [((), float(writer.dropped_rows))])
        yield family("armonik_observe_archive_write_errors", [((), float(writer.write_errors))])

    def caches(self) -> dict[str, int]:
        """Rows buffered for the next flush."""
        return {"archive_buffered_rows": self.writer.stats.buffered_rows}


def _by_table(values: Mapping[str, int]) -> list[tuple[tuple[str], float]]:
    return [((table,), float(value)) for table, value in sorted(values.items())]
