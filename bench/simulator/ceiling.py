"""The ceiling: what a bare Python gRPC server delivers on one stream on this machine.

A server with nothing but GetEvents (grpc.aio, then the thread-pool server) streams prebuilt
events of the steady scenario's sizes as fast as it can to bench.bare_receive: the yardstick for
the simulator's stream.

usage (the server alone, as the benchmark starts it):
       python -m bench.simulator.ceiling --serve aio|sync --listen 127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from concurrent import futures
from typing import Any

import grpc
from armonik.protogen.client.events_service_pb2_grpc import (
    EventsServicer,
    add_EventsServicer_to_server,
)
from armonik.protogen.common import events_common_pb2 as ev
from armonik.protogen.common import result_status_pb2 as rs
from armonik.protogen.common import task_status_pb2 as ts

from bench import common
from bench.report import KEEPS_UP, Row, cpu_row, info_row, other_row, ratio_row
from bench.simulator.stream import HOST, TARGET_EVENTS_PER_S, receive

Response = ev.EventSubscriptionResponse
KINDS = ("aio", "sync")


def steady_messages(tasks: int = 100) -> list[Any]:
    """The 9 events of each of `tasks` steady tasks, as the simulator builds them (same sizes)."""
    session = str(uuid.UUID(int=1, version=4))
    messages = []
    for i in range(tasks):
        task, payload, output = (str(uuid.UUID(int=3 * i + k + 2, version=4)) for k in range(3))
        messages += [
            Response(session_id=session, new_result=Response.NewResult(
                result_id=payload, status=rs.RESULT_STATUS_COMPLETED)),
            Response(session_id=session, new_result=Response.NewResult(
                result_id=output, status=rs.RESULT_STATUS_CREATED)),
            Response(session_id=session, new_task=Response.NewTask(
                task_id=task, payload_id=payload, origin_task_id=task,
                status=ts.TASK_STATUS_CREATING, expected_output_keys=[output])),
        ]
        messages += [
            Response(session_id=session, task_status_update=Response.TaskStatusUpdate(
                task_id=task, status=status))
            for status in (ts.TASK_STATUS_PENDING, ts.TASK_STATUS_SUBMITTED,
                           ts.TASK_STATUS_DISPATCHED, ts.TASK_STATUS_PROCESSING,
                           ts.TASK_STATUS_COMPLETED)
        ]
        messages.append(Response(session_id=session, result_status_update=(
            Response.ResultStatusUpdate(result_id=output, status=rs.RESULT_STATUS_COMPLETED))))
    return messages


class _AioEvents(EventsServicer):
    """GetEvents yielding prebuilt messages as fast as grpc.aio takes them."""

    def __init__(self) -> None:
        self.messages = steady_messages()

    async def GetEvents(self, request: Any, context: Any) -> Any:
        messages = self.messages
        i = 0
        while True:
            yield messages[i % len(messages)]
            i += 1


class _SyncEvents(EventsServicer):
    """The same on the thread-pool (synchronous) grpc server."""

    def __init__(self) -> None:
        self.messages = steady_messages()

    def GetEvents(self, request: Any, context: Any) -> Any:
        messages = self.messages
        i = 0
        while context.is_active():
            yield messages[i % len(messages)]
            i += 1


async def _serve_aio(listen: str) -> None:
    server = grpc.aio.server()
    add_EventsServicer_to_server(_AioEvents(), server)
    server.add_insecure_port(listen)
    await server.start()
    await server.wait_for_termination()


def serve(kind: str, listen: str) -> None:
    """Serve only GetEvents, streaming prebuilt events: the ceiling of a Python gRPC server."""
    if kind == "aio":
        asyncio.run(_serve_aio(listen))
        return
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add_EventsServicer_to_server(_SyncEvents(), server)
    server.add_insecure_port(listen)
    server.start()
    server.wait_for_termination()


def measure_ceiling(kind: str, seconds: float) -> dict[str, Any]:
    """The bare receiver against a bare Python gRPC server streaming prebuilt events."""
    port = common.free_port(HOST)
    cmd = [sys.executable, "-m", "bench.simulator.ceiling", "--serve", kind,
           "--listen", f"{HOST}:{port}"]
    with common.running(cmd, name=f"baseline-{kind}", port=port, timeout=30) as server:
        figures = receive(f"http://{HOST}:{port}", "baseline", seconds, server.pid)
    return {"server": f"bare grpc {kind} server", **figures}


def ceiling_rows(ceilings: list[dict[str, Any]]) -> list[Row]:
    """Table rows for the bare-server ceilings."""
    rows: list[Row] = []
    for run in ceilings:
        name = run["server"].removeprefix("bare grpc ").removesuffix(" server")
        rows += [
            ratio_row(f"ceiling {name} delivered", run["delivered_events_per_s"],
                      TARGET_EVENTS_PER_S, "ev/s", ok_at=KEEPS_UP,
                      means=f"events/s a bare grpc {name} server streaming prebuilt events "
                            "gets to the bare receiver; target: a bare client's ~25k msg/s"),
            cpu_row(f"ceiling {name} server CPU share", run["server_cpu_share"],
                    "server CPU seconds / wall seconds"),
            cpu_row(f"ceiling {name} receiver CPU share", run["receiver_cpu_share"],
                    "receiver CPU seconds / wall seconds"),
            other_row(f"ceiling {name} other processes' CPU", run["other_cpu_share"]),
            info_row(f"ceiling {name} server ev/CPU-s", run["server_events_per_cpu_s"], "ev/s",
                     means="events sent per server CPU-second: the simulator's yardstick"),
            info_row(f"ceiling {name} receiver ev/CPU-s", run["receiver_events_per_cpu_s"],
                     "ev/s", means="events received per receiver CPU-second"),
        ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=KINDS, required=True)
    parser.add_argument("--listen", default=f"{HOST}:0")
    args = parser.parse_args()
    serve(args.serve, args.listen)


if __name__ == "__main__":
    main()
