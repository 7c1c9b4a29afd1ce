"""ListTasks paging: `bench.serve_finished` plays a scenario to its end in its own process; this
process pages through each session's tasks, 1,000 per page, sorted on CREATED_AT (a cold pass,
then a warm one) then on TASK_ID: task summaries/s, ms per page and the server's CPU per page.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import grpc
from armonik.protogen.client.tasks_service_pb2_grpc import TasksStub
from armonik.protogen.common import sort_direction_pb2 as sd
from armonik.protogen.common import tasks_common_pb2 as tc
from armonik.protogen.common import tasks_fields_pb2 as tf

from bench import common
from bench.control_plane import session_filter
from bench.report import Row, info_row, other_row
from bench.serve_finished import READY

HOST = "127.0.0.1"
PAGE_SIZE = 1000
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
        with grpc.insecure_channel(f"{HOST}:{info['port']}") as channel:
            stub = TasksStub(channel)
            _warm_up(stub, info["sessions"][0])
            passes = {name: _one_pass(stub, server.pid, info["sessions"], sort_name)
                      for name, sort_name in PASSES}
    return {"server": info, "page_size": PAGE_SIZE, "passes": passes}


def _warm_up(stub: TasksStub, session: str) -> None:
    """Warm up the channel and the server's first-call paths."""
    stub.ListTasks(tc.ListTasksRequest(
        page=0, page_size=1, filters=session_filter(session),
        sort=tc.ListTasksRequest.Sort(field=tf.TaskField(
            task_summary_field=tf.TaskSummaryField(field=SORTS["task_id"])))), timeout=60)


def _one_pass(stub: TasksStub, server_pid: int, sessions: list[str],
              sort_name: str) -> dict[str, Any]:
    field = SORTS[sort_name]
    cpu0, client0 = common.cpu_seconds(server_pid), time.process_time()
    busy0 = common.machine_busy_seconds()
    started = time.perf_counter()
    runs = [page_through(stub, s, field) for s in sessions]
    wall = time.perf_counter() - started
    server_cpu = common.cpu_seconds(server_pid) - cpu0
    client_cpu = time.process_time() - client0
    other_cpu = common.machine_busy_seconds() - busy0 - server_cpu - client_cpu
    latencies = sorted(x for run in runs for x in run["latencies"])
    summaries = sum(run["summaries"] for run in runs)
    pages = len(latencies)
    return {
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


def list_rows(result: dict[str, Any]) -> list[Row]:
    """Table rows for the ListTasks runs."""
    info = result["server"]
    per_session = info["tasks"] // max(len(info["sessions"]), 1)
    rows = [info_row("list tasks: finished tasks served", info["tasks"],
                     means="tasks of the finished scenario the simulator serves",
                     note=f"{len(info['sessions'])} session(s), ~{per_session:,}/session")]
    for name, figures in result["passes"].items():
        rows += [
            Row(f"list tasks {name}: summaries/s", figures["summaries_per_s"], "/s", None,
                "complete" if figures["complete"] else "INCOMPLETE",
                "task summaries read per second, 1,000 a page, every session's"),
            info_row(f"list tasks {name}: ms/page (mean)", figures["ms_per_page_mean"], "ms",
                     means="wall time of the pass / pages"),
            info_row(f"list tasks {name}: ms/page (p50)", figures["ms_per_page_p50"], "ms",
                     means="median latency of one ListTasks call"),
            info_row(f"list tasks {name}: server CPU/page", figures["server_cpu_ms_per_page"],
                     "ms", means="simulator CPU per page served"),
            other_row(f"list tasks {name}: other processes' CPU", figures["other_cpu_share"]),
        ]
    return rows
