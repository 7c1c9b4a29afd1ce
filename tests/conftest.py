"""Shared fixtures: simulators on port 0 with an injected clock; Hypothesis without deadlines."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import grpc
import hypothesis
import pytest

from armonik_observe.simulator.clock import ManualClock
from armonik_observe.simulator.scenario import Scenario
from armonik_observe.simulator.server import Simulator

START_US = 1_700_000_000_000_000

# A per-example deadline measures the machine, not the code: one scheduler pause on a loaded CI
# machine fails an example (or its replay, as "unreliable timings").
hypothesis.settings.register_profile("suite", deadline=None)
hypothesis.settings.load_profile("suite")

SimFactory = Callable[..., AbstractAsyncContextManager[tuple[Simulator, grpc.aio.Channel]]]


@pytest.fixture
def manual_sim() -> SimFactory:
    """Start a simulator on a manual clock and an async channel to it."""

    @asynccontextmanager
    async def factory(
        scenario: Scenario | None = None, **options: Any
    ) -> AsyncIterator[tuple[Simulator, grpc.aio.Channel]]:
        sim = Simulator(scenario, clock=ManualClock(START_US), **options)
        async with sim, grpc.aio.insecure_channel(sim.target) as channel:
            yield sim, channel

    return factory
