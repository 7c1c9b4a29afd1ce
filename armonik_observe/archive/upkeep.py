"""Archive upkeep while the exporter runs: retention, compaction and size figures, in a child.

Each round runs in a short-lived child process (`python -m armonik_observe.archive.upkeep`):
a merge reads and writes whole segments through pyarrow, DuckDB and the C allocator, and those
keep what they freed for reuse (measured: a round left the exporter 90 MB larger for good).
In a child, all of it goes when the round ends, and the exporter's memory stays flat. Rounds
are crash-safe (maintenance.py), so stopping the exporter simply ends a round in progress.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from armonik_observe.archive.layout import ArchiveError
from armonik_observe.archive.maintenance import apply_retention, compact
from armonik_observe.archive.reader import TableStats
from armonik_observe.archive.reader import open as open_archive
from armonik_observe.archive.retired import DEFAULT_GRACE

log = logging.getLogger(__name__)
ROUND_TIMEOUT_S = 1800.0  # a round that takes longer than this is stuck: it is ended


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
        on_measured: Callable[[], None] | None = None,
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
        self.rounds = 0
        self.failures = 0
        self._on_measured = on_measured  # told when `stats` is new

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the archive tidy until `stop` is set, a round at a time in a child process."""
        while not stop.is_set():
            try:
                await self._round_in_child(stop)
            except Exception as error:  # not CancelledError: a round that fails is retried
                self.failures += 1
                log.warning("archive upkeep failed: %s", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    async def _round_in_child(self, stop: asyncio.Event) -> None:
        child = await asyncio.create_subprocess_exec(
            *self.command(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        output = asyncio.ensure_future(child.communicate())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({output, stopping}, timeout=ROUND_TIMEOUT_S,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not output.done():
                child.kill()  # stopping, or stuck: the round is crash-safe
                await output
        stdout, stderr = output.result()
        if child.returncode != 0:
            if stop.is_set():
                return
            last = (stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
            raise ArchiveError(f"upkeep round exited with {child.returncode}: {last}")
        self._take(json.loads(stdout))

    def command(self) -> list[str]:
        """The child's command line for one round at the current time."""
        command = [sys.executable, "-m", "armonik_observe.archive.upkeep", str(self.directory),
                   "--grace-s", str(self.grace.total_seconds()),
                   "--now", self._clock().isoformat()]
        if self.retention is not None:
            command += ["--retention-s", str(self.retention.total_seconds())]
        return command

    def _take(self, report: dict[str, Any]) -> None:
        self.stats = {name: TableStats(**figures) for name, figures in report["stats"].items()}
        self.removed_partitions += int(report["removed_partitions"])
        self.rounds += 1
        if self._on_measured is not None:
            self._on_measured()

    def once(self) -> int:
        """One round of upkeep in this process (blocking); returns the partitions removed."""
        now = self._clock()
        removed = 0
        if self.retention is not None:
            removed = len(apply_retention(self.directory, self.retention, now, grace=self.grace))
            self.removed_partitions += removed
        compact(self.directory, grace=self.grace, now=now)
        self.stats = open_archive(self.directory).stats()
        self.rounds += 1
        if self._on_measured is not None:
            self._on_measured()
        return removed


def main() -> None:
    """One upkeep round (the child's side): a JSON report on stdout."""
    parser = argparse.ArgumentParser(description="one archive upkeep round")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--grace-s", type=float, required=True)
    parser.add_argument("--now", type=datetime.fromisoformat, required=True)
    parser.add_argument("--retention-s", type=float, default=None)
    args = parser.parse_args()
    retention = None if args.retention_s is None else timedelta(seconds=args.retention_s)
    upkeep = ArchiveUpkeep(args.directory, retention=retention,
                           grace=timedelta(seconds=args.grace_s), clock=lambda: args.now)
    removed = upkeep.once()
    stats = {name: asdict(figures) for name, figures in upkeep.stats.items()}
    print(json.dumps({"removed_partitions": removed, "stats": stats}))


if __name__ == "__main__":
    main()
