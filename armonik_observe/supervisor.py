"""The one place that owns signals: run until Ctrl-C, SIGTERM or a deadline, then stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable


async def wait_for_shutdown(duration: float | None) -> None:
    """Return on SIGINT or SIGTERM, or once `duration` seconds have passed."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


async def supervise(
    start: Callable[[], Awaitable[None]],
    stop: Callable[[], Awaitable[None]],
    duration: float | None,
    stop_timeout: float = 10.0,
) -> None:
    """Start a component, wait for a shutdown request, and stop it within `stop_timeout`.

    A start that fails is stopped too (stop is idempotent: it stops what had started), then its
    error propagates.
    """
    try:
        await start()
        await wait_for_shutdown(duration)
    finally:
        await asyncio.wait_for(stop(), stop_timeout)
