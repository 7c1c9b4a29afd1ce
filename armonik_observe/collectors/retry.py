"""The one gRPC call policy: a deadline per RPC, capped exponential backoff with jitter, channel
rebuilt after UNAVAILABLE, and the connection state logged when it changes (not every failure).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from armonik_observe.collectors.channel import ChannelFactory

log = logging.getLogger(__name__)

_BROKEN = frozenset(
    {grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN}
)

# Told of every RPC attempt: (rpc name, status code name, seconds).
RpcObserver = Callable[[str, str, float], None]


def _hint(details: str | None) -> str:
    """A plain-words reading of the errors users most often misread."""
    text = (details or "").lower()
    if "ssl" in text or "handshake" in text or "certificate" in text:
        return (" - TLS mismatch: the TLS handshake failed; check that the server speaks TLS "
                "when the endpoint is https://, and that --certificate-authority signs its "
                "certificate")
    return ""


class StopRequested(Exception):
    """The caller is shutting down; no more retries."""


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with full jitter on a fraction of each delay."""

    initial: float = 0.5
    maximum: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        base = min(self.maximum, self.initial * self.multiplier**attempt)
        return base * (1 - self.jitter * rng.random())


class Connection:
    """Owns the channel to the control plane and runs calls with their deadlines."""

    def __init__(
        self,
        factory: ChannelFactory,
        *,
        backoff: Backoff | None = None,
        timeouts: Mapping[str, float] | None = None,
        observer: RpcObserver | None = None,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = factory
        self.backoff = backoff or Backoff()
        self._timeouts = timeouts or {}
        self._observer = observer
        self.rng = rng or random.Random()
        self._monotonic = monotonic
        self._channel: grpc.aio.Channel | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.up: bool | None = None
        self.calls = 0  # calls attempted so far
        self.on_reconnect: list[Callable[[], None]] = []

    @property
    def channel(self) -> grpc.aio.Channel:
        """The current channel, opened on first use."""
        if self._channel is None:
            self._channel = self._factory()
        return self._channel

    def timeout(self, rpc: str) -> float | None:
        """The deadline of one RPC in seconds (its own, else the default one)."""
        return self._timeouts.get(rpc, self._timeouts.get("default"))

    async def close(self) -> None:
        """Close the channel; idempotent."""
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()
        await asyncio.gather(*self._closing, return_exceptions=True)
        self._closing.clear()

    async def unary(self, stub: Callable[[grpc.aio.Channel], Any], rpc: str, request: Any) -> Any:
        """Call `rpc` of the service `stub` once, under its deadline, recording the outcome.

        A call that outlives its deadline fails with DEADLINE_EXCEEDED like any other failure.
        """
        began = self._monotonic()
        self.calls += 1
        try:
            method = getattr(stub(self.channel), rpc)
            result = await method(request, timeout=self.timeout(rpc))
        except grpc.aio.AioRpcError as error:
            self._observe(rpc, error.code().name, began)
            await self.report_failure(rpc, error)
            raise
        self._observe(rpc, "OK", began)
        self._mark_up(True, rpc)
        return result

    @staticmethod
    async def wait(seconds: float, stop: asyncio.Event) -> None:
        """Wait `seconds`, cut short (with StopRequested) when `stop` is set."""
        try:
            await asyncio.wait_for(stop.wait(), seconds)
        except TimeoutError:
            return
        raise StopRequested

    def _observe(self, rpc: str, code: str, began: float) -> None:
        if self._observer is not None:
            self._observer(rpc, code, self._monotonic() - began)

    async def report_failure(self, rpc: str, error: grpc.aio.AioRpcError) -> None:
        """Take a failed call into account: UNAVAILABLE marks the plane down, drops the channel."""
        if error.code() != grpc.StatusCode.UNAVAILABLE:
            return
        self._mark_up(False, rpc, error.details())
        channel = self._channel
        if channel is not None and channel.get_state() in _BROKEN:
            # Rebuilt on next use (the server may have moved or restarted); the old channel
            # closes after a grace period so calls still running on it are not cut at once.
            self._channel = None
            self._closing.add(asyncio.create_task(channel.close(grace=5.0)))
            self._closing = {task for task in self._closing if not task.done()}

    def _mark_up(self, up: bool, rpc: str, details: str | None = "") -> None:
        if up == self.up:
            return
        was_down = self.up is False
        self.up = up
        if up:
            log.info("control plane reachable (%s succeeded)", rpc)
            if was_down:
                for callback in self.on_reconnect:
                    callback()
        else:
            log.warning("control plane unavailable (%s: %s)%s", rpc, details, _hint(details))
