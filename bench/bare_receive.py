"""The ingest baseline: a bare grpcio loop that reads one session's GetEvents stream and does
nothing else with the events.

This is the floor of what any Python consumer of the stream costs: grpcio plus protobuf parsing,
no processing. Benchmarks run it in its own process and compare a consumer against it in the
same run, as events per CPU-second (robust when the server, not the consumer, is the bottleneck)
and events per wall-second. `--aio` reads with grpc.aio instead (the exporter's transport).

usage: python -m bench.bare_receive --endpoint http://127.0.0.1:5001 [--session ID]
       [--seconds 10] [--count N] [--kinds new_task,task_status_update] [--aio]
With no --session, the newest RUNNING session is read. Stops after `--seconds` or `--count`
events, whichever comes first, and prints one JSON line: events, wall_s, cpu_s and the rates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any
from urllib.parse import urlparse

import grpc
from armonik.protogen.client.events_service_pb2_grpc import EventsStub
from armonik.protogen.common import events_common_pb2 as ev

from bench.common import run_json
from bench.control_plane import running_session

KINDS = {
    "new_task": ev.EVENTS_ENUM_NEW_TASK,
    "task_status_update": ev.EVENTS_ENUM_TASK_STATUS_UPDATE,
    "new_result": ev.EVENTS_ENUM_NEW_RESULT,
    "result_status_update": ev.EVENTS_ENUM_RESULT_STATUS_UPDATE,
    "result_owner_update": ev.EVENTS_ENUM_RESULT_OWNER_UPDATE,
}


def subscription(session: str, kinds: str) -> Any:
    """The GetEvents request for `kinds` (comma-separated names; empty: every kind)."""
    wanted = [KINDS[kind] for kind in kinds.split(",") if kind]
    return ev.EventSubscriptionRequest(session_id=session, returned_events=wanted)


def receive(target: str, request: Any, count: int, seconds: float) -> dict[str, float]:
    """Iterate the stream on a sync channel until `count` events or `seconds` have passed."""
    with grpc.insecure_channel(target) as channel:
        call = EventsStub(channel).GetEvents(request)
        received = 0
        cpu0, wall0 = time.process_time(), time.monotonic()
        for _ in call:
            received += 1
            if received >= count or time.monotonic() - wall0 >= seconds:
                break
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        call.cancel()
    return {"events": received, "wall_s": wall, "cpu_s": cpu}


async def receive_aio(target: str, request: Any, count: int, seconds: float) -> dict[str, float]:
    """The same loop on a grpc.aio channel."""
    async with grpc.aio.insecure_channel(target) as channel:
        call = EventsStub(channel).GetEvents(request)
        received = 0
        cpu0, wall0 = time.process_time(), time.monotonic()
        async for _ in call:
            received += 1
            if received >= count or time.monotonic() - wall0 >= seconds:
                break
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        call.cancel()
    return {"events": received, "wall_s": wall, "cpu_s": cpu}


def report(session: str, figures: dict[str, float]) -> dict[str, Any]:
    """The JSON line: what was received, over which wall and CPU time, and the rates."""
    events, wall, cpu = int(figures["events"]), figures["wall_s"], figures["cpu_s"]
    return {"session": session, "events": events, "wall_s": round(wall, 3),
            "cpu_s": round(cpu, 3), "events_per_s": round(events / max(wall, 1e-9), 1),
            "events_per_cpu_s": round(events / max(cpu, 1e-9), 1)}


def run_bare(endpoint: str, session: str, seconds: float, *, count: int = 0, kinds: str = "",
             aio: bool = False, timeout: float = 30.0) -> tuple[dict[str, Any], float]:
    """Run this receiver in its own process: its JSON report and the monotonic time it exited
    (its measuring window is [exited - wall_s, exited], give or take its interpreter's exit)."""
    cmd = [sys.executable, "-m", "bench.bare_receive", "--endpoint", endpoint,
           "--session", session, "--seconds", f"{seconds:g}", "--count", str(count),
           "--kinds", kinds, *(["--aio"] if aio else [])]
    return run_json(cmd, timeout=seconds + timeout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="http://host:port of the server")
    parser.add_argument("--session", help="the session to read (default: newest RUNNING)")
    parser.add_argument("--seconds", type=float, default=10.0, help="stop after (default 10)")
    parser.add_argument("--count", type=int, default=0, help="stop after N events (0: never)")
    parser.add_argument("--kinds", default="", help="comma-separated; empty means every kind")
    parser.add_argument("--aio", action="store_true", help="read with grpc.aio")
    args = parser.parse_args()
    target = urlparse(args.endpoint).netloc or args.endpoint
    session = args.session
    if not session:
        with grpc.insecure_channel(target) as channel:
            session = running_session(channel)
    request = subscription(session, args.kinds)
    count = args.count or sys.maxsize
    if args.aio:
        figures = asyncio.run(receive_aio(target, request, count, args.seconds))
    else:
        figures = receive(target, request, count, args.seconds)
    print(json.dumps(report(session, figures)), flush=True)


if __name__ == "__main__":
    main()
