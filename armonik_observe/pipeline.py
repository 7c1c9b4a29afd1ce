"""Fans batches of records out to sinks: Prometheus, the archive, and traces as they come.

A sink has an async life cycle (start, flush, stop) and a synchronous `consume(batch)` that must
stay cheap: it runs on the event loop for every batch. A sink that does slow work (writing files)
buffers in `consume` and does the work off the loop.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import astuple, dataclass, field
from functools import reduce
from typing import Protocol

from armonik_observe.exporters.exposition import Family
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
    sessions: list[SessionInfo] = field(default_factory=list)  # those that changed
    session_totals: dict[str, int] | None = None  # sessions per status, when counted
    partitions: list[PartitionInfo] = field(default_factory=list)
    counts: list[StatusCounts] = field(default_factory=list)
    health: list[HealthSample] = field(default_factory=list)
    results: list[ResultRecord] = field(default_factory=list)
    versions: Versions | None = None


@dataclass(frozen=True)
class Needs:
    """What a sink needs the collectors to read beyond what metrics need."""

    detailed_facts: bool = False  # ListTasksDetailed: every column of a task
    results: bool = False  # a ListResults sweep of every session that ended
    all_events: bool = False  # result events as well as task events

    def __or__(self, other: Needs) -> Needs:
        return Needs(*(a or b for a, b in zip(astuple(self), astuple(other), strict=True)))


class Sink(Protocol):
    """Something that takes record batches."""

    name: str
    needs: Needs

    async def start(self) -> None:
        """Get ready to consume."""

    def consume(self, batch: Batch) -> None:
        """Take one batch; must not block the event loop."""

    async def flush(self) -> None:
        """Make everything consumed so far durable or visible."""

    async def stop(self) -> None:
        """Flush and release resources; idempotent."""

    def self_metrics(self) -> Iterable[Family]:
        """The sink's own metric families for this scrape (armonik_observe_<sink>_*)."""

    def caches(self) -> Mapping[str, int]:
        """Entries of the sink's bounded caches, by name (armonik_observe_cache_entries)."""


class Pipeline:
    """Delivers every batch to every sink; one failing sink does not starve the others.

    The sinks' life cycle belongs to whoever built them (the exporter starts them in order and
    stops those that started): the pipeline only routes batches and flushes.
    """

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = list(sinks)
        self.failures: dict[str, int] = {}

    def publish(self, batch: Batch) -> None:
        """Hand a batch to every sink."""
        for sink in self.sinks:
            try:
                sink.consume(batch)
            except Exception:
                self._failed(sink, "consume a batch")

    async def flush(self) -> None:
        """Flush every sink; a sink that fails does not keep the others from flushing."""
        for sink in self.sinks:
            try:
                await sink.flush()
            except Exception:
                self._failed(sink, "flush")

    def needs(self) -> Needs:
        """What the sinks together need."""
        return reduce(operator.or_, (sink.needs for sink in self.sinks), Needs())

    def _failed(self, sink: Sink, what: str) -> None:
        self.failures[sink.name] = self.failures.get(sink.name, 0) + 1
        log.exception("sink %s failed to %s", sink.name, what)
