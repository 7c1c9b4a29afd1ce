"""A poll that repeats every interval until stopped, remembering when it last worked.

A failed poll is retried with the connection's backoff, never slower than the interval. An
exception that is not a gRPC error is a mishap (collectors/supervision.py): counted, logged
once, and the poller goes on. Readiness comes from the age of the last success: a poller that
has not succeeded within two intervals plus the deadline of its calls is stale, whether its
calls fail, hang or crash.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable

import grpc

from armonik_observe.collectors.retry import Connection, StopRequested
from armonik_observe.collectors.supervision import Mishaps
from armonik_observe.pipeline import Batch

log = logging.getLogger(__name__)

Publish = Callable[[Batch], None]


class Poller(ABC):
    """Runs `poll_once` every `interval` seconds; a failed poll is retried sooner, with backoff."""

    name = "poller"
    rpcs: tuple[str, ...] = ()  # what a poll calls, for its deadline

    def __init__(self, *, connection: Connection, publish: Publish, interval: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.connection = connection
        self.publish = publish
        self.interval = interval
        self._monotonic = monotonic
        self.ok: bool | None = None  # None until the first poll ends
        self.last_success: float | None = None  # on the monotonic clock
        self.last_failure = ""
        self.mishaps = Mishaps(self.name)
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
        calls = self.connection.calls
        try:
            await self.poll_once()
        except grpc.aio.AioRpcError as error:
            self._failed(f"{error.code().name}: {error.details()}")
        except Exception as error:  # not CancelledError: a BaseException, it propagates
            self.mishaps.record(error)
            self._failed(self.mishaps.last)
        else:
            self.mishaps.recovered()
            self.last_success = self._monotonic()
            if self.ok is False and self.connection.calls > calls:  # not idle: it got answers
                log.info("%s poll succeeded", self.name)
            self.ok = True
        finally:
            self.polls += 1
            self.ran.set()
        return bool(self.ok)

    def _failed(self, reason: str) -> None:
        if self.ok is not False:
            log.warning("%s poll failed: %s", self.name, reason)
        self.ok, self.last_failure = False, reason

    def stale_after(self) -> float:
        """Seconds without a success after which this poller's data is stale."""
        timeouts = [self.connection.timeout(rpc) or 0.0 for rpc in self.rpcs]
        return 2 * self.interval + max(timeouts, default=0.0)

    def staleness(self, now: float) -> str | None:
        """Why this poller is not ready at monotonic time `now`, or None when it is."""
        why = f"; last failure: {self.last_failure}" if self.last_failure else ""
        if self.last_success is None:
            return f"{self.name}: no successful poll yet{why}" if self.polls else \
                f"{self.name}: not polled yet"
        age, limit = now - self.last_success, self.stale_after()
        if age <= limit:
            return None
        return f"{self.name}: last success {age:.0f}s ago (stale after {limit:.0f}s){why}"

    async def wait_for_polls(self, count: int) -> None:
        """Wait until at least `count` polls have ended (for tests)."""
        while self.polls < count:
            self.ran.clear()
            await self.ran.wait()
