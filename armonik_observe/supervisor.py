"""The one place that owns signals: run until Ctrl-C, SIGTERM or a deadline, then stop cleanly.

The handlers stay in place while the component stops: a second Ctrl-C (users press it when a
stop seems slow) says the stop is under way instead of interrupting it, which would leave the
servers half closed and the event loop gone under them. The stop is bounded anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ShutdownRequest:
    """Set by the first SIGINT or SIGTERM; later ones only say that the stop is under way."""

    def __init__(self, stop_timeout: float) -> None:
        self.event = asyncio.Event()
        self._stop_timeout = stop_timeout

    def __call__(self) -> None:
        if self.event.is_set():
            print(f"stopping (within {self._stop_timeout:g}s)...", file=sys.stderr, flush=True)
        self.event.set()


@contextlib.contextmanager
def signals_handled(handler: Callable[[], None]) -> Iterator[None]:
    """SIGINT and SIGTERM call `handler` on the running loop for the block."""
    loop = asyncio.get_running_loop()
    for sig in SIGNALS:
        loop.add_signal_handler(sig, handler)
    try:
        yield
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)


async def wait_for_shutdown(duration: float | None) -> None:
    """Return on SIGINT or SIGTERM, or once `duration` seconds have passed."""
    request = ShutdownRequest(0)
    with signals_handled(request), contextlib.suppress(TimeoutError):
        await asyncio.wait_for(request.event.wait(), duration)


async def supervise(
    start: Callable[[], Awaitable[None]],
    stop: Callable[[], Awaitable[None]],
    duration: float | None,
    stop_timeout: float = 10.0,
) -> None:
    """Start a component, wait for a shutdown request, and stop it within `stop_timeout`.

    A start that fails is stopped too (stop is idempotent: it stops what had started), then its
    error propagates. Signals during the stop do not interrupt it.
    """
    request = ShutdownRequest(stop_timeout)
    with signals_handled(request):
        try:
            await start()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(request.event.wait(), duration)
        finally:
            await asyncio.wait_for(stop(), stop_timeout)
