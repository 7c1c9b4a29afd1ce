"""Pollers: a failed poll is retried with the shared backoff, never slower than the interval."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from exporter_harness import exporter_for

from armonik_observe.collectors.channel import ChannelFactory, parse_endpoint
from armonik_observe.collectors.poller import Poller
from armonik_observe.collectors.retry import Backoff, Connection


class Idle(Poller):
    """A poller whose poll does nothing: only its schedule is under test."""

    async def poll_once(self) -> None:
        """Nothing to call."""


def idle_poller(interval: float) -> Idle:
    connection = Connection(ChannelFactory(parse_endpoint("http://127.0.0.1:1")),
                            backoff=Backoff(initial=0.5, multiplier=2.0, jitter=0.0),
                            rng=random.Random(1))
    return Idle(connection=connection, publish=lambda batch: None, interval=interval)


async def polls_until(poller: Poller, done: Callable[[], object], limit: int = 500) -> None:
    """Wait for the poller's next poll until `done()` holds (bounded)."""
    for _ in range(limit):
        if done():
            return
        await poller.wait_for_polls(poller.polls + 1)
    raise AssertionError("not done")


def test_retries_back_off_from_fast_up_to_the_interval_and_a_success_resets_them() -> None:
    poller = idle_poller(interval=5.0)
    assert [poller._delay(failures) for failures in range(1, 7)] == [0.5, 1, 2, 4, 5, 5]
    assert poller._delay(0) == 5.0
    assert idle_poller(interval=0.2)._delay(1) == 0.2  # never slower than the interval


async def test_a_poller_with_a_long_interval_recovers_as_soon_as_the_plane_answers(
    manual_sim: Any,
) -> None:
    async with manual_sim() as (sim, _):
        await sim.take_down()
        async with exporter_for(sim, facts_interval=3600, health_interval=3600) as exporter:
            # Without retries, each would wait its hour after its first failure.
            await polls_until(exporter.facts, lambda: exporter.facts.polls >= 3)
            await polls_until(exporter.health, lambda: exporter.health.polls >= 3)
            assert exporter.facts.ok is False and exporter.health.ok is False
            await sim.bring_up()
            await polls_until(exporter.facts, lambda: exporter.facts.ok)
            await polls_until(exporter.health, lambda: exporter.health.ok)
            await polls_until(exporter.counts, exporter.up)  # counts poll every 50 ms: a tick
