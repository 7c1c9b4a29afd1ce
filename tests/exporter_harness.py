"""Helpers for exporter tests: an exporter on port 0 pointed at an in-process simulator."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from armonik_observe.archive.output import ArchiveOutput
from armonik_observe.collectors.retry import Backoff
from armonik_observe.config import ServeSettings
from armonik_observe.model import TERMINAL_TASK_STATUSES
from armonik_observe.service import Exporter
from armonik_observe.simulator.records import SimTask
from armonik_observe.simulator.server import Simulator

# Settles of the pollers (each ~2 x 50 ms) given to a catch-up before a test gives up.
MAX_SETTLES = 100

FAST = {
    "session_interval": 0.05,
    "count_interval": 0.05,
    "health_interval": 0.05,
    "facts_interval": 0.05,
}


@asynccontextmanager
async def exporter_for(sim: Simulator, clock: Callable[[], float] | None = None,
                       **options: Any) -> AsyncIterator[Exporter]:
    """An exporter polling the simulator every 50 ms, serving metrics on a free port; its
    clock is the simulator's unless told otherwise."""
    settings = ServeSettings.build(
        endpoint=sim.endpoint, listen="127.0.0.1:0", **{**FAST, **options}
    )
    exporter = Exporter(settings, backoff=Backoff(initial=0.01, maximum=0.1),
                        clock=clock or sim_seconds(sim))
    async with exporter:
        yield exporter


def archive_of(exporter: Exporter) -> ArchiveOutput:
    """The exporter's archive sink (the settings must have turned it on)."""
    archive = exporter.output("archive")
    assert isinstance(archive, ArchiveOutput)
    return archive


def sim_seconds(sim: Simulator) -> Callable[[], float]:
    """The simulator's clock in seconds: the exporter's clock in tests (its T0 included)."""
    return lambda: sim.clock.now_us() / 1_000_000


async def settle(exporter: Exporter, rounds: int = 2) -> None:
    """Wait until every poller has run `rounds` more times (events, not sleeps)."""
    for poller in exporter.pollers:
        await poller.wait_for_polls(poller.polls + rounds)
    exporter.streams.flush()


async def settle_until(exporter: Exporter, done: Callable[[], object]) -> None:
    """Settle the pollers until `done()` holds (bounded)."""
    for _ in range(MAX_SETTLES):
        await settle(exporter)
        if done():
            return
    raise AssertionError("the exporter did not catch up")


async def wait_until(done: Callable[[], object], within: float = 30.0,
                     step: float = 0.05) -> None:
    """Check `done()` every `step` seconds until it holds (real-time tests only)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not done():
        if loop.time() > deadline:
            raise AssertionError(f"not done within {within}s")
        await asyncio.sleep(step)


def ended_by_labels(tasks: list[SimTask]) -> Counter[tuple[str, str, str]]:
    """Ground truth of armonik_tasks_ended_total: ended tasks by partition, app, status."""
    return Counter(
        (t.partition_id, t.options.application_name, t.status.name)
        for t in tasks
        if t.status in TERMINAL_TASK_STATUSES
    )


def sample(exporter: Exporter, name: str, labels: dict[str, str] | None = None) -> float:
    """A sample's value from the exporter's registry; a series that is not exposed fails."""
    value = exporter.registry.get_sample_value(name, labels or {})
    assert value is not None, f"{name}{labels or ''} is not exposed"
    return value
