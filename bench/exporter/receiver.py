"""The exporter as a stream receiver: its EventStreams and pipeline (Prometheus sink) reading one
session's GetEvents stream in a process of their own, the counterpart of bench.bare_receive.

usage (as the replay measurement starts it):
       python -m bench.exporter.receiver --endpoint http://HOST:PORT --session ID
       [--count N] [--seconds 25]
Prints one JSON line: events received, wall and CPU seconds, replays dropped, tasks tracked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from armonik_observe.config import ServeSettings
from armonik_observe.model import SessionInfo
from armonik_observe.runner import tune_process
from armonik_observe.service import Exporter
from bench.common import run_json
from bench.exporter.harness import HOST


async def receive(endpoint: str, session: str, count: int, seconds: float) -> dict[str, Any]:
    """The exporter's EventStreams and pipeline (Prometheus sink) until `count` events or
    `seconds`.

    The pollers are not started: discovery would drop the session, which is closed. The process
    runs under the exporter's settings (runner.tune_process), as `serve` does.
    """
    tune_process()
    exporter = Exporter(ServeSettings.build(endpoint=endpoint, listen=f"{HOST}:0"))
    streams = exporter.streams
    stop = asyncio.Event()
    for sink in exporter.pipeline.sinks:  # the Prometheus sink and stream lag: no archive
        await sink.start()
    runner = asyncio.create_task(streams.run(stop))
    await asyncio.sleep(0)
    cpu0, wall0 = time.process_time(), time.monotonic()
    streams.follow([SessionInfo(session_id=session, status="RUNNING", partition_ids=(),
                                created_at=None)])
    # Replayed ends are dropped, never published: poll the counter every 5 ms.
    while sum(streams.received.values()) < count and time.monotonic() - wall0 < seconds:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    received = sum(streams.received.values())
    stop.set()
    await runner
    await exporter.connection.close()
    return {"events": received, "wall_s": wall, "cpu_s": cpu,
            "dropped": dict(exporter.budget.dropped), "tracked": exporter.budget.used}


def run_receiver(endpoint: str, session: str, count: int, seconds: float,
                 timeout: float) -> tuple[dict[str, Any], float]:
    """Run this receiver in its own process: its JSON report and the monotonic time it exited."""
    cmd = [sys.executable, "-m", "bench.exporter.receiver", "--endpoint", endpoint,
           "--session", session, "--count", str(count), "--seconds", f"{seconds:g}"]
    return run_json(cmd, timeout=timeout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--session", required=True)
    parser.add_argument("--count", type=int, default=0, help="stop after N events (0: never)")
    parser.add_argument("--seconds", type=float, default=600.0)
    args = parser.parse_args()
    report = asyncio.run(receive(args.endpoint, args.session, args.count or sys.maxsize,
                                 args.seconds))
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
