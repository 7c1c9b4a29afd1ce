"""The async life cycle every long-lived component shares: start, stop, `async with`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


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
