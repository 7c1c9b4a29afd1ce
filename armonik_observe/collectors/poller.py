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
    """Runs `poll_once` every `interval` seconds; a failed poll is retried at the next one."""

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
        """Poll until `stop` is set."""
        while not stop.is_set():
            await self._poll_safely()
            try:
                await Connection.wait(self.interval, stop)
            except StopRequested:
                return

    async def _poll_safely(self) -> None:
        try:
            await self.poll_once()
        except grpc.aio.AioRpcError as error:
            self._set_ok(False, f"{error.code().name}: {error.details()}")
        else:
            self._set_ok(True, "")
        finally:
            self.polls += 1
            self.ran.set()

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
