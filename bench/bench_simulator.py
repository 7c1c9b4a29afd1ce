"""Benchmark the simulator's two hot read paths: one GetEvents stream, and ListTasks paging.

1. Ceilings: a bare Python gRPC server (grpc.aio, then the thread-pool server) streams prebuilt
   events of the same sizes as fast as it can, to the same receiver: what any Python server
   delivers on one stream on this machine, the yardstick for the simulator.
2. Stream: `armonik-observe simulate --scenario steady --rate R` runs as its own process; the shared
   bare grpcio receiver (shared/tools/bare_receive.py) reads the session's GetEvents stream for
   `--seconds`. Reported per rate: offered events/s (R x 9 events per task), generated events/s
   (tasks the simulator actually created in the window x 9), delivered events/s (what the
   receiver got), both processes' CPU share (CPU seconds / wall seconds) and what limits.
   Target: a bare Python client takes ~25k messages/s; the simulator must not be the bottleneck.
3. ListTasks: `bench.serve_finished` plays a scenario to its end in its own process; this process
   pages through a session's tasks, 1,000 per page, sorted on CREATED_AT then on TASK_ID, and
   reports task summaries/s, ms per page and the server's CPU per page.

usage: python -m bench.bench_simulator [--seconds 6] [--rate R ...] [--list-tasks 50000]
Writes bench/results/simulator.json. Takes about a minute with the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
import psutil
from armonik.protogen.client.events_service_pb2_grpc import (
    EventsServicer,
    add_EventsServicer_to_server,
)
from armonik.protogen.client.sessions_service_pb2_grpc import SessionsStub
from armonik.protogen.client.tasks_service_pb2_grpc import TasksStub
from armonik.protogen.common import events_common_pb2 as ev
from armonik.protogen.common import result_status_pb2 as rs
from armonik.protogen.common import session_status_pb2 as ss
from armonik.protogen.common import sessions_common_pb2 as sc
from armonik.protogen.common import sessions_fields_pb2 as sf
from armonik.protogen.common import sort_direction_pb2 as sd
from armonik.protogen.common import task_status_pb2 as ts
from armonik.protogen.common import tasks_common_pb2 as tc
from armonik.protogen.common import tasks_fields_pb2 as tf
from armonik.protogen.common import tasks_filters_pb2 as tflt
from armonik.protogen.common.filters_common_pb2 import FILTER_STRING_OPERATOR_EQUAL, FilterString

from bench import common
from bench.common import BenchError, CpuSampler, Row
from bench.serve_finished import READY

NAME = "simulator"
HOST = "127.0.0.1"
DEFAULT_RATES = (1000.0, 3000.0, 4500.0)
# Per steady task: NEW_TASK, 5 status updates (PENDING, SUBMITTED, DISPATCHED, PROCESSING,
# COMPLETED), NEW_RESULT for its payload and its output, and the output's COMPLETED update.
EVENTS_PER_TASK = 9
TARGET_EVENTS_PER_S = 25_000.0  # the issue: a bare Python grpcio client receives ~25k msg/s
PAGE_SIZE = 1000
SATURATED = 0.85  # a CPU share above this means the process is CPU-bound (one Python thread)
KEEPS_UP = 0.95  # delivered/generated above this means no backlog builds up


# ------------------------------------------------------------------------------ grpc helpers


def session_filter(session_id: str) -> Any:
    """Tasks filters selecting one session."""
    field = tf.TaskField(
        task_summary_field=tf.TaskSummaryField(field=tf.TASK_SUMMARY_ENUM_FIELD_SESSION_ID)
    )
    condition = tflt.FilterField(
        field=field,
        filter_string=FilterString(value=session_id, operator=FILTER_STRING_OPERATOR_EQUAL),
    )
    return tflt.Filters(**{"or": [tflt.FiltersAnd(**{"and": [condition]})]})


def running_session(channel: grpc.Channel, timeout: float = 10.0) -> str:
    """The newest RUNNING session (the one bare_receive would pick), waiting for it to open."""
    request = sc.ListSessionsRequest(
        page=0, page_size=100,
        sort=sc.ListSessionsRequest.Sort(
            field=sf.SessionField(session_raw_field=sf.SessionRawField(
                field=sf.SESSION_RAW_ENUM_FIELD_CREATED_AT)),
            direction=sd.SORT_DIRECTION_DESC))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for session in SessionsStub(channel).ListSessions(request, timeout=5).sessions:
            if session.status == ss.SESSION_STATUS_RUNNING:
                return str(session.session_id)
        time.sleep(0.05)
    raise BenchError("the simulator opened no RUNNING session")


def count_tasks(channel: grpc.Channel, session_id: str) -> tuple[int, float]:
    """How many tasks the session holds, and the monotonic time the answer arrived."""
    response = TasksStub(channel).CountTasksByStatus(
        tc.CountTasksByStatusRequest(filters=session_filter(session_id)), timeout=30
    )
    return sum(s.count for s in response.status), time.monotonic()


# --------------------------------------------------------------------------------- baseline

Response = ev.EventSubscriptionResponse


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


def serve_baseline(kind: str, listen: str) -> None:
    """Serve only GetEvents, streaming prebuilt events: the ceiling of a Python gRPC server."""
    if kind == "aio":
        asyncio.run(_serve_aio(listen))
        return
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add_EventsServicer_to_server(_SyncEvents(), server)
    server.add_insecure_port(listen)
    server.start()
    server.wait_for_termination()


# ----------------------------------------------------------------------------------- stream


def receive(endpoint: str, session: str, seconds: float, server_pid: int) -> dict[str, Any]:
    """Run the bare receiver on one stream; its report plus the server's CPU over its window."""
    bare = common.shared_tool("tools/bare_receive.py")
    with CpuSampler(server_pid) as sampler, CpuSampler(None) as machine:
        report, exited = common.run_json(
            [sys.executable, str(bare), "--endpoint", endpoint, "--session", session,
             "--seconds", f"{seconds:g}"],
            timeout=seconds + 20,
        )
    wall = float(report["wall_s"])
    # The receiver measured [exited - wall, exited], give or take its interpreter's exit.
    server_cpu = sampler.cpu_between(exited - wall, exited)
    # CPU other processes took meanwhile (this one's sampling threads included): noise.
    other_cpu = machine.cpu_between(exited - wall, exited) - server_cpu - float(report["cpu_s"])
    return {
        "delivered_events_per_s": float(report["events_per_s"]),
        "events": report["events"],
        "wall_s": wall,
        "server_cpu_s": round(server_cpu, 3),
        "server_cpu_share": round(server_cpu / wall, 3),
        "server_events_per_cpu_s": round(report["events"] / max(server_cpu, 1e-9), 1),
        "receiver_cpu_s": report["cpu_s"],
        "receiver_cpu_share": round(float(report["cpu_s"]) / wall, 3),
        "receiver_events_per_cpu_s": report["events_per_cpu_s"],
        "other_cpu_share": round(max(other_cpu, 0.0) / wall, 3),
        "cores": psutil.cpu_count(),
    }


def measure_baseline(kind: str, seconds: float) -> dict[str, Any]:
    """The bare receiver against a bare Python gRPC server streaming prebuilt events."""
    port = common.free_port(HOST)
    cmd = [sys.executable, "-m", "bench.bench_simulator", "--serve-baseline", kind,
           "--listen", f"{HOST}:{port}"]
    with common.running(cmd, name=f"baseline-{kind}", port=port, timeout=30) as server:
        figures = receive(f"http://{HOST}:{port}", "baseline", seconds, server.pid)
    return {"server": f"bare grpc {kind} server", **figures}


def measure_stream(rate: float, seconds: float) -> dict[str, Any]:
    """One simulator at `rate` tasks/s, one bare receiver for `seconds`: every figure."""
    port = common.free_port(HOST)
    cmd = common.cli_command("simulate", "--listen", f"{HOST}:{port}", "--scenario", "steady",
                             "--rate", f"{rate:g}", "--speed", "1")
    with common.running(cmd, name="simulator", port=port, timeout=30) as sim, \
            grpc.insecure_channel(f"{HOST}:{port}") as channel:
        session = running_session(channel)
        tasks0, counted0 = count_tasks(channel, session)
        figures = receive(f"http://{HOST}:{port}", session, seconds, sim.pid)
        tasks1, counted1 = count_tasks(channel, session)
    # Tasks the simulator created, from two counts bracketing the receiver's window.
    generated_tasks_per_s = (tasks1 - tasks0) / (counted1 - counted0)
    figures = {
        "rate_tasks_per_s": rate,
        "offered_events_per_s": rate * EVENTS_PER_TASK,
        "generated_tasks_per_s": round(generated_tasks_per_s, 1),
        "generated_events_per_s": round(generated_tasks_per_s * EVENTS_PER_TASK, 1),
        **figures,
        "session_tasks_at_end": tasks1,
    }
    figures["bottleneck"] = bottleneck(figures)
    return figures


def bottleneck(f: dict[str, Any]) -> str:
    """Name what limits delivery: generating the events, or sending them down the stream."""
    sim_busy = f["server_cpu_share"] >= SATURATED
    receiver_busy = f["receiver_cpu_share"] >= SATURATED
    causes = []
    if f["generated_events_per_s"] < KEEPS_UP * f["offered_events_per_s"]:
        # With CPU to spare this is schedule drift: each stream batch is scheduled from the
        # time the previous one actually ran, so the driver's lateness lowers the rate.
        causes.append("generation: " + ("simulator CPU-bound" if sim_busy else "lags schedule"))
    if f["delivered_events_per_s"] < KEEPS_UP * f["generated_events_per_s"]:
        if sim_busy and receiver_busy:
            causes.append("delivery: both CPU-bound")
        elif sim_busy:
            causes.append("delivery: simulator CPU-bound")
        elif receiver_busy:
            causes.append("delivery: receiver CPU-bound")
        elif busy_machine(f):
            causes.append("delivery: machine CPU (other load "
                          f"{f['other_cpu_share']:.2f} core)")
        else:
            causes.append("delivery: per-message latency (neither CPU-bound)")
    return "; ".join(causes) or "none (keeps up)"


def busy_machine(f: dict[str, Any]) -> bool:
    """Whether every core was nearly busy during the run, whoever used them."""
    used = f["server_cpu_share"] + f["receiver_cpu_share"] + f["other_cpu_share"]
    return used >= SATURATED * f["cores"]


def keeps_up(value: float, target: float) -> str:
    """'x0.98 ok' when value is within KEEPS_UP of its target, else 'x0.50 LOW'."""
    ratio = value / target
    return f"x{ratio:.2f} {'ok' if ratio >= KEEPS_UP else 'LOW'}"


def cpu_row(label: str, share: float) -> Row:
    """A CPU-share row: flagged when the process is CPU-bound."""
    return Row(label, share, "", f"<{SATURATED}", "ok" if share < SATURATED else "SATURATED")


def other_row(label: str, run: dict[str, Any]) -> Row:
    """How many cores other processes used meanwhile: above 0.2 the figures are noisy."""
    share = run["other_cpu_share"]
    return Row(label, share, "cores", 0.2, "quiet" if share < 0.2 else "NOISY")


def baseline_rows(baselines: list[dict[str, Any]]) -> list[Row]:
    """Table rows for the bare-server ceilings."""
    rows: list[Row] = []
    for run in baselines:
        name = run["server"].removeprefix("bare grpc ").removesuffix(" server")
        rows += [
            Row(f"ceiling {name} delivered", run["delivered_events_per_s"], "ev/s",
                TARGET_EVENTS_PER_S, keeps_up(run["delivered_events_per_s"],
                                              TARGET_EVENTS_PER_S)),
            cpu_row(f"ceiling {name} server CPU share", run["server_cpu_share"]),
            cpu_row(f"ceiling {name} receiver CPU share", run["receiver_cpu_share"]),
            other_row(f"ceiling {name} other processes' CPU", run),
            Row(f"ceiling {name} server ev/CPU-s", run["server_events_per_cpu_s"], "ev/s"),
            Row(f"ceiling {name} receiver ev/CPU-s", run["receiver_events_per_cpu_s"], "ev/s"),
        ]
    return rows


def stream_rows(runs: list[dict[str, Any]], baselines: list[dict[str, Any]]) -> list[Row]:
    """Table rows for the simulator stream runs, compared with the aio ceiling if measured."""
    rows: list[Row] = []
    aio = next((b for b in baselines if "aio" in b["server"]), None)
    for run in runs:
        rate = f"@{run['rate_tasks_per_s']:g}/s"
        target = min(run["offered_events_per_s"], TARGET_EVENTS_PER_S)
        delivered = run["delivered_events_per_s"]
        rows += [
            Row(f"stream {rate} generated", run["generated_events_per_s"], "ev/s",
                run["offered_events_per_s"],
                keeps_up(run["generated_events_per_s"], run["offered_events_per_s"])),
            Row(f"stream {rate} delivered", delivered, "ev/s", target,
                keeps_up(delivered, target)),
            cpu_row(f"stream {rate} simulator CPU share", run["server_cpu_share"]),
            cpu_row(f"stream {rate} receiver CPU share", run["receiver_cpu_share"]),
            other_row(f"stream {rate} other processes' CPU", run),
            Row(f"stream {rate} simulator ev/CPU-s", run["server_events_per_cpu_s"], "ev/s",
                aio["server_events_per_cpu_s"] if aio else None,
                f"x{run['server_events_per_cpu_s'] / aio['server_events_per_cpu_s']:.2f}"
                " of bare aio" if aio else ""),
            Row(f"stream {rate} delivered/offered",
                round(delivered / run["offered_events_per_s"], 3), "",
                verdict=f"limit: {run['bottleneck']}"),
        ]
    best = max(runs, key=lambda r: r["delivered_events_per_s"])["delivered_events_per_s"]
    rows.append(Row("stream max delivered", best, "ev/s", TARGET_EVENTS_PER_S,
                    keeps_up(best, TARGET_EVENTS_PER_S)))
    if aio:
        ceiling = aio["delivered_events_per_s"]
        rows.append(Row("stream max delivered / bare aio ceiling", round(best / ceiling, 3),
                        "", 1.0, keeps_up(best, ceiling)))
    return rows


# -------------------------------------------------------------------------------- ListTasks

SORTS = {"created_at": tf.TASK_SUMMARY_ENUM_FIELD_CREATED_AT,
         "task_id": tf.TASK_SUMMARY_ENUM_FIELD_TASK_ID}
# The server may cache what it built for a page (e.g. summary bytes of ended tasks): the first
# pass is measured apart, as "cold"; the later ones find whatever the first one left.
PASSES = (("created_at cold", "created_at"), ("created_at", "created_at"), ("task_id", "task_id"))


def page_through(stub: TasksStub, session_id: str, sort_field: int) -> dict[str, Any]:
    """Read every task summary of a session, PAGE_SIZE at a time; per-page latencies."""
    sort = tc.ListTasksRequest.Sort(
        field=tf.TaskField(task_summary_field=tf.TaskSummaryField(field=sort_field)),
        direction=sd.SORT_DIRECTION_ASC,
    )
    filters = session_filter(session_id)
    latencies: list[float] = []
    summaries, page, total = 0, 0, None
    while total is None or page * PAGE_SIZE < total:
        started = time.perf_counter()
        response = stub.ListTasks(
            tc.ListTasksRequest(page=page, page_size=PAGE_SIZE, filters=filters, sort=sort),
            timeout=60,
        )
        latencies.append(time.perf_counter() - started)
        summaries += len(response.tasks)
        total = response.total
        page += 1
        if not response.tasks:
            break
    return {"summaries": summaries, "total": total, "pages": page, "latencies": latencies}


def measure_list_tasks(bag_tasks: int, scenario: str) -> dict[str, Any]:
    """Serve a finished scenario in a subprocess; page through each session, once per pass."""
    cmd = [sys.executable, "-m", "bench.serve_finished"]
    cmd += ["--bag", str(bag_tasks)] if bag_tasks else ["--scenario", scenario]
    with common.running(cmd, name="serve_finished", ready_prefix=READY, timeout=120) as server:
        info = json.loads(server.ready.removeprefix(READY))
        sorts: dict[str, Any] = {}
        with grpc.insecure_channel(f"{HOST}:{info['port']}") as channel:
            stub = TasksStub(channel)
            # Warm up the channel and the server's first-call paths.
            stub.ListTasks(tc.ListTasksRequest(
                page=0, page_size=1, filters=session_filter(info["sessions"][0]),
                sort=tc.ListTasksRequest.Sort(field=tf.TaskField(
                    task_summary_field=tf.TaskSummaryField(field=SORTS["task_id"])))), timeout=60)
            for name, sort_name in PASSES:
                field = SORTS[sort_name]
                cpu0, client0 = common.cpu_seconds(server.pid), time.process_time()
                busy0 = common.machine_busy_seconds()
                started = time.perf_counter()
                runs = [page_through(stub, s, field) for s in info["sessions"]]
                wall = time.perf_counter() - started
                server_cpu = common.cpu_seconds(server.pid) - cpu0
                client_cpu = time.process_time() - client0
                other_cpu = common.machine_busy_seconds() - busy0 - server_cpu - client_cpu
                latencies = sorted(x for run in runs for x in run["latencies"])
                summaries = sum(run["summaries"] for run in runs)
                pages = len(latencies)
                sorts[name] = {
                    "summaries": summaries,
                    "pages": pages,
                    "wall_s": round(wall, 3),
                    "summaries_per_s": round(summaries / wall, 1),
                    "ms_per_page_mean": round(1000 * wall / pages, 2),
                    "ms_per_page_p50": round(1000 * latencies[pages // 2], 2),
                    "ms_per_page_max": round(1000 * latencies[-1], 2),
                    "server_cpu_s": round(server_cpu, 3),
                    "server_cpu_ms_per_page": round(1000 * server_cpu / pages, 2),
                    "client_cpu_s": round(client_cpu, 3),
                    "other_cpu_share": round(max(other_cpu, 0.0) / wall, 3),
                    "sort": sort_name,
                    "complete": all(r["summaries"] == r["total"] for r in runs),
                }
    return {"server": info, "page_size": PAGE_SIZE, "passes": sorts}


def list_rows(result: dict[str, Any]) -> list[Row]:
    """Table rows for the ListTasks runs."""
    info = result["server"]
    per_session = info["tasks"] // max(len(info["sessions"]), 1)
    rows = [Row("list tasks: finished tasks served", info["tasks"], "",
                verdict=f"{len(info['sessions'])} session(s), ~{per_session:,}/session")]
    for name, figures in result["passes"].items():
        ok = "ok" if figures["complete"] else "INCOMPLETE"
        rows += [
            Row(f"list tasks {name}: summaries/s", figures["summaries_per_s"], "/s",
                verdict=ok),
            Row(f"list tasks {name}: ms/page (mean)", figures["ms_per_page_mean"], "ms"),
            Row(f"list tasks {name}: ms/page (p50)", figures["ms_per_page_p50"], "ms"),
            Row(f"list tasks {name}: server CPU/page", figures["server_cpu_ms_per_page"],
                "ms"),
            other_row(f"list tasks {name}: other processes' CPU", figures),
        ]
    return rows


# ------------------------------------------------------------------------------------- main


def attempt(measure: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run one measurement; a failure becomes {"error": ...} so that the others still run."""
    try:
        return measure(*args)
    except (BenchError, grpc.RpcError, subprocess.TimeoutExpired, OSError) as error:
        message = " ".join(str(error).split())[:160]
        print(f"  failed: {message}", file=sys.stderr, flush=True)
        return {"measure": measure.__name__, "args": list(args), "error": message}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0,
                        help="how long the receiver reads each stream (default 6)")
    parser.add_argument("--rate", type=float, action="append",
                        help="tasks/s of the steady scenario; repeat for several "
                             f"(default {', '.join(f'{r:g}' for r in DEFAULT_RATES)})")
    parser.add_argument("--list-tasks", type=int, default=50_000,
                        help="tasks of the one finished session paged by ListTasks "
                             "(0: the burst scenario instead; default 50000)")
    parser.add_argument("--skip-baseline", action="store_true",
                        help="skip the bare-server ceilings")
    parser.add_argument("--skip-stream", action="store_true")
    parser.add_argument("--skip-list", action="store_true")
    parser.add_argument("--serve-baseline", choices=("aio", "sync"), help=argparse.SUPPRESS)
    parser.add_argument("--listen", default=f"{HOST}:0", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:  # internal: the ceiling server, run as a child process
        serve_baseline(args.serve_baseline, args.listen)
        return
    started = time.monotonic()
    results: dict[str, Any] = {"seconds": args.seconds, "events_per_task": EVENTS_PER_TASK,
                               "target_events_per_s": TARGET_EVENTS_PER_S}
    rows: list[Row] = []
    baselines: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    if not args.skip_baseline:
        for kind in ("aio", "sync"):
            print(f"ceiling: bare grpc {kind} server for {args.seconds:g}s ...", flush=True)
            run = attempt(measure_baseline, kind, args.seconds)
            (baselines if "error" not in run else failed).append(run)
            if "error" in run:
                rows.append(Row(f"ceiling {kind}", "ERROR", verdict=run["error"]))
        results["baseline"] = baselines
        rows += baseline_rows(baselines)
    if not args.skip_stream:
        runs = []
        for rate in args.rate or DEFAULT_RATES:
            print(f"stream: steady at {rate:g} tasks/s for {args.seconds:g}s ...", flush=True)
            run = attempt(measure_stream, rate, args.seconds)
            (runs if "error" not in run else failed).append(run)
            if "error" in run:
                rows.append(Row(f"stream @{rate:g}/s", "ERROR", verdict=run["error"]))
        results["stream"] = runs
        if runs:
            rows += stream_rows(runs, baselines)
    if not args.skip_list:
        what = f"a bag of {args.list_tasks} tasks" if args.list_tasks else "the burst scenario"
        print(f"list tasks: paging through {what} ...", flush=True)
        listed = attempt(measure_list_tasks, args.list_tasks, "burst")
        if "error" in listed:
            failed.append(listed)
            rows.append(Row("list tasks", "ERROR", verdict=listed["error"]))
        else:
            results["list_tasks"] = listed
            rows += list_rows(listed)
    results["errors"] = failed
    results["total_runtime_s"] = round(time.monotonic() - started, 1)
    print()
    common.print_table(rows, f"simulator benchmark ({results['total_runtime_s']}s)")
    print(f"\nwrote {common.write_results(NAME, results)}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
