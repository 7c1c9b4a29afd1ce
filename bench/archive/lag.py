"""Event-loop stalls while the archive writes.

A ticker coroutine sleeps 1 ms in a loop and records loop.time() deltas minus the sleep: idle
first (the timer's and the machine's own noise), during the end-to-end write (bench.archive.write
probes its rounds), during one flush of every row at once (the worst case; the sink then holds
the only reference to the records and frees them itself), and during 200k-row flushes with the
GIL switch interval at Python's default 5 ms then at the exporter's 1 ms (alternated, twice
each, pooled). Garbage-collector passes meanwhile (gc.callbacks, any thread: a pass holds the
GIL) are counted beside.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from pathlib import Path
from typing import Any

from armonik_observe.archive.writer import ArchiveSink
from armonik_observe.fact_columns import TaskFacts
from armonik_observe.pipeline import Batch
from bench.archive.facts import rate_figures, row_count
from bench.common import window
from bench.report import Row, info_row, percentile, ratio_row

TARGET_STALL_MS = 5.0  # the issue: the writer never blocks the event loop longer than this
TICK_S = 0.001


class LagProbe:
    """A coroutine sleeping TICK_S in a loop; each wake-up's lateness is the loop's lag."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.gc_pauses: list[float] = []  # every collection meanwhile, whichever thread ran it
        self._gc_started = 0.0
        self._stop = False
        self._task: asyncio.Task[None] | None = None
        self._started = 0.0
        self._wall = 0.0

    def start(self) -> None:
        """Start ticking on the running loop."""
        self._started = time.perf_counter()
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.create_task(self._run(), name="lag-probe")

    async def stop(self) -> dict[str, Any]:
        """Stop ticking; the lag figures in milliseconds."""
        self._stop = True
        if self._task is not None:
            await self._task
        self._wall = time.perf_counter() - self._started
        gc.callbacks.remove(self._on_gc)
        figures = lag_figures(self.lags, self._wall)
        pauses = sorted(self.gc_pauses)
        figures.update({"gc_passes": len(pauses),
                        "gc_max_ms": round(1000 * pauses[-1], 3) if pauses else 0.0,
                        "gc_pauses_over_5ms": sum(1 for p in pauses if p > 0.005)})
        return figures

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        # A collection holds the GIL throughout: the loop's thread waits it out.
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pauses.append(time.perf_counter() - self._gc_started)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop:
            before = loop.time()
            await asyncio.sleep(TICK_S)
            self.lags.append(loop.time() - before - TICK_S)


def lag_figures(lags: list[float], wall: float) -> dict[str, Any]:
    """Max, p99, p99.9 and stalls over the target, in milliseconds."""
    ordered = sorted(lags)
    n = len(ordered)

    def quantile(q: float) -> float:
        return 1000 * percentile(ordered, q)

    return {"ticks": n, "wall_s": round(wall, 3),
            "max_ms": round(1000 * ordered[-1], 3) if n else 0.0,
            "p50_ms": round(quantile(0.5), 3), "p99_ms": round(quantile(0.99), 3),
            "p999_ms": round(quantile(0.999), 3),
            "stalls_over_5ms": sum(1 for lag in ordered if lag > TARGET_STALL_MS / 1000),
            "stalls_over_10ms": sum(1 for lag in ordered if lag > 0.010),
            "switch_interval_ms": round(1000 * sys.getswitchinterval(), 3)}


async def one_flush(directory: Path, pages: list[TaskFacts], *, idle_first: bool = False,
                    switch_interval: float | None = None) -> dict[str, Any]:
    """Every row consumed at once, then one flush() while the probe ticks: the worst case.

    The caller's list is emptied after consume: when nothing else holds the pages, the sink
    frees them itself, as in the exporter. `switch_interval` sets sys.setswitchinterval for the
    flush (how long the loop's thread may wait for the GIL before the worker is made to drop it).
    """
    rows = row_count(pages)
    sink = ArchiveSink(directory, flush_interval=3600.0, max_buffer_rows=rows + 1)
    result: dict[str, Any] = {}
    if idle_first:
        idle = LagProbe()
        idle.start()
        await asyncio.sleep(1.0)
        result["idle_lag"] = await idle.stop()
    for page in pages:
        sink.consume(Batch(facts=page))
    pages.clear()
    default_interval = sys.getswitchinterval()
    if switch_interval is not None:
        sys.setswitchinterval(switch_interval)
    try:
        lag = LagProbe()
        lag.start()
        with window() as measured:
            await sink.flush()
        result["lag"] = await lag.stop()
        result["lag_raw"] = lag.lags
    finally:
        sys.setswitchinterval(default_interval)
    return {**rate_figures(measured, rows), **result, "segments": sink.stats.segments_written}


def lag_rows(label: str, lag: dict[str, Any]) -> list[Row]:
    """Rows for one lag measurement."""
    rows = [
        ratio_row(f"loop lag {label}: max", lag["max_ms"], TARGET_STALL_MS, "ms",
                  higher_is_better=False,
                  means="the event loop's longest stall: a 1 ms sleep's lateness"),
        info_row(f"loop lag {label}: p99 | p99.9",
                 f"{lag['p99_ms']:.2f} | {lag['p999_ms']:.2f}", "ms",
                 means="the same lateness's 99th and 99.9th percentiles",
                 note=f"{lag['ticks']:,} ticks over {lag['wall_s']:.1f}s"),
        Row(f"loop lag {label}: stalls > 5 ms", lag["stalls_over_5ms"], "", 0,
            "ok" if lag["stalls_over_5ms"] == 0 else "STALLS",
            "ticks late by more than the 5 ms target",
            f"{lag['stalls_over_10ms']} > 10 ms"),
    ]
    if "gc_passes" in lag:
        rows.append(info_row(f"loop lag {label}: GC passes > 5 ms", lag["gc_pauses_over_5ms"],
                             means="garbage-collector passes longer than 5 ms meanwhile (a pass "
                                   "holds the GIL)",
                             note=f"longest {lag['gc_max_ms']:.1f} ms of {lag['gc_passes']} "
                                  "passes"))
    return rows
