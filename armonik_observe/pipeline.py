"""Fans batches of records out to sinks: Prometheus now, the archive and traces as they come.

A sink has an async life cycle (start, flush, stop) and a synchronous `consume(batch)` that must
stay cheap: it runs on the event loop for every batch. A sink that does slow work (writing files)
buffers in `consume` and does the work off the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from armonik_observe.fact_columns import TaskFacts
from armonik_observe.model import (
    HealthSample,
    PartitionInfo,
    ResultRecord,
    SessionEvent,
    SessionInfo,
    StatusCounts,
    Versions,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Batch:
    """Records gathered by the collectors since the last batch, by kind."""

    events: list[SessionEvent] = field(default_factory=list)
    facts: TaskFacts = field(default_factory=TaskFacts.empty)
    sessions: list[SessionInfo] = field(default_factory=list)
    partitions: list[PartitionInfo] = field(default_factory=list)
    counts: list[StatusCounts] = field(default_factory=list)
    health: list[HealthSample] = field(default_factory=list)
    results: list[ResultRecord] = field(default_factory=list)
    versions: Versions | None = None


class Sink(Protocol):
    """Something that takes record batches."""

    name: str

    async def start(self) -> None:
        """Get ready to consume."""

    def consume(self, batch: Batch) -> None:
        """Take one batch; must not block the event loop."""

    async def flush(self) -> None:
        """Make everything consumed so far durable or visible."""

    async def stop(self) -> None:
        """Flush and release resources; idempotent."""


class Pipeline:
    """Delivers every batch to every sink; one failing sink does not starve the others."""

    def __init__(self, sinks: Sequence[Sink], *, stop_timeout: float = 10.0) -> None:
        self.sinks = list(sinks)
        self._stop_timeout = stop_timeout
        self.failures: dict[str, int] = {}
        self._started = False

    async def start(self) -> None:
        """Start every sink."""
        for sink in self.sinks:
            await sink.start()
        self._started = True

    def publish(self, batch: Batch) -> None:
        """Hand a batch to every sink."""
        for sink in self.sinks:
            try:
                sink.consume(batch)
            except Exception:
                self.failures[sink.name] = self.failures.get(sink.name, 0) + 1
                log.exception("sink %s failed to consume a batch", sink.name)

    async def flush(self) -> None:
        """Flush every sink."""
        for sink in self.sinks:
            await sink.flush()

    async def stop(self) -> None:
        """Stop every sink within the timeout; idempotent."""
        if not self._started:
            return
        self._started = False
        for sink in reversed(self.sinks):
            try:
                await asyncio.wait_for(sink.stop(), self._stop_timeout)
            except TimeoutError:
                log.error("sink %s did not stop within %.1fs", sink.name, self._stop_timeout)
