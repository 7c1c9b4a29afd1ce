"""Control-plane calls per minute, from armonik_observe_rpc_duration_seconds_count by RPC.

Idle: a demo simulator at x0.1 and an exporter with default intervals (the entry point runs
them in the background while the in-process figures are taken, since this needs only wall
time). Calls are counted from just after the first polls over `seconds` plus PASS_SLACK_S (so
the count holds whole poll passes, not one more or one less) and scaled by 60 / `seconds`. The
load measurement (bench.exporter.load) counts them the same way under load.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from bench import common
from bench.exporter.harness import (
    RPC_COUNT,
    RPC_SUM,
    Scrape,
    metrics_url,
    start_exporter,
    start_simulator,
)
from bench.report import Row, info_row

PASS_SLACK_S = 2.5  # a call window ends half a facts interval after a whole number of passes


def calls_per_minute(before: Scrape, after: Scrape, seconds: float) -> dict[str, Any]:
    """Unary calls to the control plane by RPC between two scrapes, scaled over `seconds`."""
    b, a = before.by(RPC_COUNT, "rpc"), after.by(RPC_COUNT, "rpc")
    per_rpc = {rpc: round((a[rpc] - b.get(rpc, 0.0)) * 60 / seconds, 1) for rpc in sorted(a)}
    busy_b, busy_a = before.by(RPC_SUM, "rpc"), after.by(RPC_SUM, "rpc")
    in_call = {rpc: round((busy_a[rpc] - busy_b.get(rpc, 0.0)) / (after.at - before.at), 3)
               for rpc in sorted(busy_a)}
    return {"window_s": round(after.at - before.at, 1), "scaled_over_s": seconds,
            "per_minute": per_rpc, "total_per_minute": round(sum(per_rpc.values()), 1),
            "seconds_in_call_per_second": in_call}


@contextlib.contextmanager
def idle_pair() -> Iterator[str]:
    """A slow demo simulator and a default exporter; yields the exporter's /metrics URL."""
    sim, target = start_simulator("--scenario", "demo", "--speed", "0.1")
    try:
        exporter = start_exporter(f"http://{target}")
        try:
            yield metrics_url(exporter)
        finally:
            common.stop_process(exporter)
    finally:
        common.stop_process(sim)


def calls_rows(label: str, calls: dict[str, Any]) -> list[Row]:
    """Rows for calls per minute, per RPC and in total."""
    rows = [info_row(f"calls/min {label}: {rpc}", n, "/min",
                     means=f"{rpc} calls the exporter made to the control plane per minute",
                     note=f"{calls['seconds_in_call_per_second'].get(rpc, 0):.3f} s in call/s")
            for rpc, n in calls["per_minute"].items() if n]
    rows.append(info_row(f"calls/min {label}: total", calls["total_per_minute"], "/min",
                         means="every unary call to the control plane per minute",
                         note=f"counted over {calls['scaled_over_s']:g}s of passes"))
    return rows


def idle_rows(idle: dict[str, Any]) -> list[Row]:
    """Rows for the idle exporter: calls per minute and what they are spread over."""
    scope = info_row("idle: partitions | followed sessions",
                     f"{idle['partitions']} | {idle['followed_sessions']:g}",
                     means="what CountTasksByStatus is called for: one per partition, one per "
                           "session, each count interval")
    return [*calls_rows("idle", idle), scope]
