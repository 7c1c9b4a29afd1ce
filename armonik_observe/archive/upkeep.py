"""Archive upkeep while the exporter runs: retention, compaction and size figures, off the loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from pathlib import Path

from armonik_observe.archive.layout import ArchiveError
from armonik_observe.archive.maintenance import apply_retention, compact
from armonik_observe.archive.reader import TableStats
from armonik_observe.archive.reader import open as open_archive

log = logging.getLogger(__name__)


class ArchiveUpkeep:
    """Every `interval` seconds: drop partitions past retention, compact, measure the tables."""

    def __init__(
        self, directory: Path, *, interval: float = 300.0, retention: timedelta | None = None
    ) -> None:
        self.directory = directory
        self.interval = interval
        self.retention = retention
        self.stats: dict[str, TableStats] = {}
        self.removed_partitions = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the archive tidy until `stop` is set."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.once)
            except (OSError, ArchiveError) as error:
                log.warning("archive upkeep failed: %s", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    def once(self) -> None:
        """One round of upkeep (blocking: run it in a thread)."""
        if self.retention is not None:
            self.removed_partitions += len(apply_retention(self.directory, self.retention))
        compact(self.directory)
        self.stats = open_archive(self.directory).stats()
