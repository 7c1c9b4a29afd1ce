"""Simulated time: a manual clock for tests and a scaled real-time clock for servers."""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any, Protocol

MICROS = 1_000_000


class SimClock(Protocol):
    """A source of simulated time in integer microseconds since the Unix epoch."""

    def now_us(self) -> int:
        """Return the current simulated time."""
        ...

    def wall_seconds_until(self, due_us: int) -> float:
        """Return how many real seconds remain before simulated time reaches `due_us`."""
        ...


class ManualClock:
    """A clock that moves only when told to: tests drive it, nothing waits on real time."""

    def __init__(self, start_us: int) -> None:
        self._now = start_us

    def now_us(self) -> int:
        """Return the current simulated time."""
        return self._now

    def set(self, now_us: int) -> None:
        """Move the clock forward to `now_us` (never backward)."""
        self._now = max(self._now, now_us)

    def wall_seconds_until(self, due_us: int) -> float:
        """A manual clock never reaches a time on its own."""
        return float("inf")


class ScaledClock:
    """Simulated time that runs `speed` times faster than the monotonic wall clock."""

    def __init__(
        self, *, start_us: int, speed: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._start_us = start_us
        self._speed = speed
        self._monotonic = monotonic
        self._origin = monotonic()

    def now_us(self) -> int:
        """Return the current simulated time."""
        elapsed = self._monotonic() - self._origin
        return self._start_us + int(elapsed * self._speed * MICROS)

    def wall_seconds_until(self, due_us: int) -> float:
        """Return the real seconds before simulated time reaches `due_us`."""
        return max(0.0, (due_us - self.now_us()) / (self._speed * MICROS))


class Scheduler:
    """A discrete-event agenda: callbacks ordered by simulated due time, then by insertion.

    Upkeep actions (data retention) run like any other but do not keep the scenario going:
    `next_due` is None once only upkeep is left.
    """

    def __init__(self, start_us: int) -> None:
        self._heap: list[tuple[int, int, Callable[..., None], tuple[Any, ...], bool]] = []
        self._seq = itertools.count()
        self._upkeep = 0  # upkeep actions in the heap
        self.current_us = start_us
        self.in_action = False  # True while an action runs: its due time is "now"
        # Called when a new action becomes the earliest one, so a real-time driver can wake up.
        self.on_new_head: Callable[[], None] | None = None

    def __len__(self) -> int:
        return len(self._heap)

    def at(self, due_us: int, action: Callable[..., None], *args: Any) -> None:
        """Run `action(*args)` at simulated time `due_us` (never before the current time)."""
        self._push(due_us, action, args, upkeep=False)

    def upkeep_at(self, due_us: int, action: Callable[..., None], *args: Any) -> None:
        """Like `at`, for an upkeep action: it runs on time but keeps no scenario going."""
        self._upkeep += 1
        self._push(due_us, action, args, upkeep=True)

    def _push(
        self, due_us: int, action: Callable[..., None], args: tuple[Any, ...], *, upkeep: bool
    ) -> None:
        entry = (max(due_us, self.current_us), next(self._seq), action, args, upkeep)
        heapq.heappush(self._heap, entry)
        if self.on_new_head is not None and self._heap[0] is entry:
            self.on_new_head()

    def next_due(self) -> int | None:
        """Return the due time of the earliest pending action; None once only upkeep is left."""
        return self._heap[0][0] if len(self._heap) > self._upkeep else None

    def next_wake(self) -> int | None:
        """Return the due time of the earliest pending action, upkeep included."""
        return self._heap[0][0] if self._heap else None

    def run_due(self, until_us: int, limit: int) -> int:
        """Run at most `limit` actions due at or before `until_us`; return how many ran."""
        heap = self._heap
        ran = 0
        self.in_action = True
        try:
            while heap and heap[0][0] <= until_us and ran < limit:
                due, _, action, args, upkeep = heapq.heappop(heap)
                self._upkeep -= upkeep
                self.current_us = due
                action(*args)
                ran += 1
        finally:
            self.in_action = False
        return ran
