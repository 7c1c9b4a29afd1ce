"""Session discovery against history: control-plane calls a minute and exporter CPU, flat.

For each history size (1k, 10k, 100k closed sessions, plus 3 running ones), `bench.serve_finished
--history N` serves a control plane whose history is an hour old and frozen; `armonik-observe
serve` runs against it with the default settings. After the first polls, the exporter's own
RPC counters and its CPU are read over `--seconds`.

Targets (issue 15): at most 30 ListSessions calls a minute with the defaults, whatever the
history; calls and exporter CPU flat across history sizes (CPU at the largest size within 1.25x
of the smallest). For context, the full ListSessions pass of the old discovery: ceil(N / 1000)
pages every pass, 6 passes a minute.

usage: python -m bench.bench_discovery [--seconds 60] [--sizes 1000 10000 100000] [--quick]
Writes bench/results/discovery.json. About 4 minutes with the defaults, 40 s with --quick.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

import psutil

from bench import common
from bench.common import Child
from bench.exporter.calls import calls_per_minute
from bench.exporter.harness import (
    EXPORTER_READY,
    exporter_command,
    first_polls_done,
    metrics_url,
    scrape,
    scrape_at,
)
from bench.report import Run, info_row, parse_args, ratio_row
from bench.serve_finished import LIVE_SESSIONS, READY

NAME = "discovery"
TARGET_LIST_SESSIONS_PER_MIN = 30.0
TARGET_CPU_GROWTH = 1.25  # exporter CPU at the largest history over the smallest
DEFAULT_SIZES = (1_000, 10_000, 100_000)
QUICK = {"seconds": 15.0, "sizes": [1_000, 10_000]}
PASSES_PER_MINUTE = 6  # the default --session-interval is 10 s


def measure(size: int, seconds: float) -> dict[str, Any]:
    """One history size: ListSessions and every call per minute, exporter CPU share."""
    cmd = [sys.executable, "-m", "bench.serve_finished", "--history", str(size)]
    with common.running(cmd, name="serve_finished", ready_prefix=READY, timeout=600) as sim:
        served = json.loads(sim.ready.removeprefix(READY))
        with common.running(exporter_command(served["endpoint"]), name="exporter",
                            ready_prefix=EXPORTER_READY, timeout=30) as exporter:
            return {**_measure_exporter(exporter, seconds), "play_s": served["play_s"]}


def _measure_exporter(exporter: Child, seconds: float) -> dict[str, Any]:
    url = metrics_url(exporter)
    common.wait_for(lambda: first_polls_done(url), 60, "the exporter's first polls")
    before, cpu0 = scrape(url), common.cpu_seconds(exporter.pid)
    after = scrape_at(url, before.at + seconds)
    cpu = common.cpu_seconds(exporter.pid) - cpu0
    calls = calls_per_minute(before, after, seconds)
    followed = after.total("armonik_observe_followed_sessions")
    return {**calls, "exporter_cpu_share": round(cpu / (after.at - before.at), 4),
            "followed_sessions": followed,
            "rss_mb": round(psutil.Process(exporter.pid).memory_info().rss / 2**20, 1)}


def rows_for(size: int, figures: dict[str, Any], smallest_cpu: float) -> list[Any]:
    """One history size's rows: ListSessions and all calls a minute, CPU against the smallest."""
    label = f"{size:,} sessions"
    list_sessions = figures["per_minute"].get("ListSessions", 0.0)
    old = math.ceil((size + LIVE_SESSIONS) / 1000) * PASSES_PER_MINUTE
    return [
        ratio_row(f"{label}: ListSessions/min", list_sessions, TARGET_LIST_SESSIONS_PER_MIN,
                  "/min", higher_is_better=False,
                  means="ListSessions calls the exporter made per minute (default intervals)",
                  note=f"a full pass every 10 s would make {old}/min"),
        info_row(f"{label}: every call/min", figures["total_per_minute"], "/min",
                 means="every unary call to the control plane per minute",
                 note=", ".join(f"{rpc} {n:g}" for rpc, n in figures["per_minute"].items())),
        ratio_row(f"{label}: exporter CPU vs smallest", figures["exporter_cpu_share"] /
                  max(smallest_cpu, 1e-9), TARGET_CPU_GROWTH, "x", higher_is_better=False,
                  means="exporter CPU share at this history over the smallest history's",
                  note=f"{figures['exporter_cpu_share']:.4f} cores, "
                       f"{figures['rss_mb']:.0f} MB RSS, "
                       f"{figures['followed_sessions']:g} followed sessions"),
    ]


def options() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="seconds the exporter is measured per history size (default 60)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES),
                        help="history sizes in sessions (default 1000 10000 100000)")
    return parse_args(parser, QUICK)


def main() -> None:
    args = options()
    run = Run(NAME, "session discovery against history", ("discovery",))
    run.results.update(seconds=args.seconds, sizes=args.sizes,
                       target_list_sessions_per_min=TARGET_LIST_SESSIONS_PER_MIN)
    figures: dict[int, dict[str, Any]] = {}
    for size in args.sizes:
        print(f"history of {size:,} sessions: measuring for {args.seconds:g}s ...", flush=True)
        started = time.monotonic()
        result = run.attempt(f"history_{size}", measure, size, args.seconds,
                             section="discovery")
        if result is not None:
            figures[size] = result
        run.phase(f"history {size} ({time.monotonic() - started:.0f}s)")
    if figures:
        smallest = figures[min(figures)]["exporter_cpu_share"]
        for size, result in sorted(figures.items()):
            run.add("discovery", rows_for(size, result, smallest))
    run.finish()


if __name__ == "__main__":
    main()
