"""Run a simulator on its own event loop in a background thread, for synchronous clients.

The official `armonik` client classes block; called on the loop that serves the simulator they
would deadlock it. `SimulatorThread` gives them a simulator that lives on another loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from armonik_observe.simulator.server import Simulator

T = TypeVar("T")


class SimulatorThread:
    """A `Simulator` served from a daemon thread; use as a context manager."""

    def __init__(self, factory: Callable[[], Simulator], start_timeout: float = 10.0) -> None:
        self._factory = factory
        self._timeout = start_timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="armonik-simulator")
        self.simulator: Simulator | None = None

    def __enter__(self) -> Simulator:
        self._thread.start()
        self.simulator = self.call(self._start())
        return self.simulator

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def _start(self) -> Simulator:
        simulator = self._factory()
        await simulator.start()
        return simulator

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the simulator's loop and wait for its result."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout or self._timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def run(self, function: Callable[[Simulator], T]) -> T:
        """Run a plain function on the simulator's loop (safe access to its state)."""
        simulator = self.simulator
        assert simulator is not None

        async def wrapper() -> T:
            return function(simulator)

        return self.call(wrapper())

    def close(self) -> None:
        """Stop the simulator and the thread; idempotent."""
        if self._loop.is_closed():
            return
        if self.simulator is not None and self._thread.is_alive():
            self.call(self.simulator.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(self._timeout)
        self._loop.close()
