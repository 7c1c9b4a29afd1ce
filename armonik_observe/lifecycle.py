"""The async life cycle every long-lived component shares: start, stop, `async with`."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

log = logging.getLogger(__name__)


class AsyncService(ABC):
    """Something that starts, stops (idempotently, within a bound) and works as `async with`."""

    @abstractmethod
    async def start(self) -> None:
        """Start working."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop working; idempotent and bounded in time."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


Stop = Callable[[], Awaitable[None]]


class StartedStack:
    """Components started in order, stopped in reverse: the one owner of a start and its stop.

    Each component's stop is registered as it starts, so a start that fails halfway stops what
    had started. Each stop is bounded by `timeout` and isolated: one that fails or hangs is
    logged and the others still run. `close` is idempotent.
    """

    def __init__(self, timeout: float = 10.0) -> None:
        self._timeout = timeout
        self._stops: list[tuple[str, Stop]] = []

    async def enter(self, name: str, start: Callable[[], Awaitable[None]], stop: Stop) -> None:
        """Start a component and register its stop (not registered if the start fails)."""
        await start()
        self._stops.append((name, stop))

    def defer(self, name: str, stop: Stop) -> None:
        """Register a stop for something that needs no start."""
        self._stops.append((name, stop))

    async def close(self) -> None:
        """Stop everything registered, last first."""
        while self._stops:
            name, stop = self._stops.pop()
            try:
                await asyncio.wait_for(stop(), self._timeout)
            except TimeoutError:
                log.error("%s did not stop within %.1fs", name, self._timeout)
            except Exception:
                log.exception("%s failed to stop", name)
