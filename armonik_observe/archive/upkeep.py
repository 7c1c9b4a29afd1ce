"""Archive upkeep while the exporter runs: retention, compaction and size figures, off the loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from armonik_observe.archive.layout import ArchiveError
from armonik_observe.archive.maintenance import apply_retention, compact
from armonik_observe.archive.memory import release_free_memory
from armonik_observe.archive.reader import TableStats
from armonik_observe.archive.reader import open as open_archive
from armonik_observe.archive.retired import DEFAULT_GRACE

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    """The current time, aware (UTC)."""
    return datetime.now(UTC)


class ArchiveUpkeep:
    """Every `interval` seconds: retire partitions past retention, compact, measure the tables.

    What compaction and retention retire stays readable for `grace` (connections opened before
    keep answering), then a later round deletes it.
    """

    def __init__(
        self, directory: Path, *, interval: float = 300.0, retention: timedelta | None = None,
        grace: timedelta = DEFAULT_GRACE, clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if grace < timedelta(0):
            raise ValueError(f"the archive grace period cannot be negative ({grace})")
        self.directory = directory
        self.interval = interval
        self.retention = retention
        self.grace = grace
        self._clock = clock
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
        now = self._clock()
        if self.retention is not None:
            expired = apply_retention(self.directory, self.retention, now, grace=self.grace)
            self.removed_partitions += len(expired)
        compact(self.directory, grace=self.grace, now=now)
        self.stats = open_archive(self.directory).stats()
        release_free_memory()  # a merge's buffers, not kept until the next one
