"""A poll that repeats every interval until stopped, remembering whether its last run worked."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable

import grpc

from armonik_observe.collectors.retry import Connection, StopRequested
from armonik_observe.pipeline import Batch

log = logging.getLogger(__name__)

Publish = Callable[[Batch], None]


class Poller(ABC):
    """Runs `poll_once` every `interval` seconds; a failed poll is retried sooner, with backoff."""

    name = "poller"

    def __init__(self, *, connection: Connection, publish: Publish, interval: float) -> None:
        self.connection = connection
        self.publish = publish
        self.interval = interval
        self.ok: bool | None = None  # None until the first poll ends
        self.polls = 0
        self.ran = asyncio.Event()  # set after every poll; tests wait on it

    @abstractmethod
    async def poll_once(self) -> None:
        """Call the control plane once and publish what it said."""

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set; after a failure, retry with backoff capped at the interval."""
        failures = 0
        while not stop.is_set():
            failures = 0 if await self._poll_safely() else failures + 1
            try:
                await Connection.wait(self._delay(failures), stop)
            except StopRequested:
                return

    def _delay(self, failures: int) -> float:
        """The interval after a success; fast first retries after failures, never slower."""
        if not failures:
            return self.interval
        backoff = self.connection.backoff.delay(failures - 1, self.connection.rng)
        return min(self.interval, backoff)

    async def _poll_safely(self) -> bool:
        try:
            await self.poll_once()
        except grpc.aio.AioRpcError as error:
            self._set_ok(False, f"{error.code().name}: {error.details()}")
        else:
            self._set_ok(True, "")
        finally:
            self.polls += 1
            self.ran.set()
        return bool(self.ok)

    def _set_ok(self, ok: bool, reason: str) -> None:
        if ok != self.ok:
            if ok:
                log.info("%s poll succeeded", self.name)
            else:
                log.warning("%s poll failed: %s", self.name, reason)
        self.ok = ok

    async def wait_for_polls(self, count: int) -> None:
        """Wait until at least `count` polls have ended (for tests)."""
        while self.polls < count:
            self.ran.clear()
            await self.ran.wait()
