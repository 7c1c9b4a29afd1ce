"""Task facts: parsing, converting and folding ListTasks pages, then one poll of a served session.

1. Prebuilt ListTasksResponse pages (1,000 TaskSummary each; bytes from a finished in-process
   simulator run via simulator.convert.list_tasks_response) parsed, converted to columns
   (collectors.convert.task_facts) and folded with numpy (FactMetrics.add): facts/s end to end
   and per stage, medians of two repeats, wall and CPU.
2. TaskFactsPoller.poll_once() over the `tasks` newest ended tasks of the served session
   (bench.serve_finished): wall time, facts/s, pages, rows read, client and server CPU per page.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from typing import Any
from urllib.parse import urlparse

import grpc
from armonik.protogen.client.tasks_service_pb2_grpc import TasksStub
from armonik.protogen.common import sort_direction_pb2 as sd
from armonik.protogen.common import tasks_common_pb2 as tc
from armonik.protogen.common import tasks_fields_pb2 as tf
from prometheus_client import CollectorRegistry

from armonik_observe.collectors import convert
from armonik_observe.collectors.channel import ChannelFactory
from armonik_observe.collectors.facts import TaskFactsPoller
from armonik_observe.collectors.origin import FactsOrigin
from armonik_observe.collectors.retry import Connection
from armonik_observe.config import ServeSettings
from armonik_observe.exporters.fact_metrics import FactMetrics
from armonik_observe.exporters.prometheus import PrometheusSink, SelfStatus
from armonik_observe.pipeline import Batch
from armonik_observe.simulator.clock import MICROS, ManualClock
from armonik_observe.simulator.convert import list_tasks_response
from armonik_observe.simulator.server import Simulator
from bench.common import BenchError, Child, CpuSampler, window
from bench.exporter.harness import HOST
from bench.report import Row, info_row, other_row, ratio_row
from bench.serve_finished import bag_scenario

TARGET_FACTS_PER_S = 200_000.0  # task facts parsed, converted and folded per second


async def _finished_tasks(tasks: int) -> list[Any]:
    simulator = Simulator(bag_scenario(tasks), clock=ManualClock(int(time.time() * MICROS)),
                          record_events=False)
    simulator.workload.start()  # no server: only the scheduled play
    await simulator.run_until_idle()
    ended = [t for t in simulator.plane.tasks.values() if t.ended_at is not None]
    return sorted(ended, key=lambda t: (t.ended_at, t.task_id))


def build_pages(pages: int, page_size: int = 1000) -> list[bytes]:
    """Serialized ListTasksResponse pages of ended tasks from a finished in-process run."""
    tasks = asyncio.run(_finished_tasks(pages * page_size))
    return [
        list_tasks_response(tasks[i * page_size:(i + 1) * page_size], True, i, page_size,
                            len(tasks)).SerializeToString()
        for i in range(pages)
    ]


def measure_pages(pages: list[bytes], repeats: int = 2) -> dict[str, Any]:
    """Parse -> task_facts -> FactMetrics.add over prebuilt pages, per stage and end to end.

    Medians over `repeats` of wall time and of this thread's CPU time (robust to preemption).
    """
    parse = tc.ListTasksResponse.FromString
    task_facts = convert.task_facts
    names = ("parse", "convert", "aggregate", "end_to_end")
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    facts = 0

    def mark() -> tuple[float, float]:
        return time.perf_counter(), time.thread_time()

    with window() as noise:
        for _ in range(repeats):
            gc.collect()
            t0 = mark()
            responses = [parse(page) for page in pages]
            t1 = mark()
            converted = [task_facts(response.tasks) for response in responses]
            t2 = mark()
            metrics = FactMetrics()
            for page_facts in converted:
                metrics.add(page_facts)
            t3 = mark()
            facts = sum(len(f) for f in converted)
            del responses, converted
            gc.collect()
            metrics = FactMetrics()
            t4 = mark()
            for page in pages:
                metrics.add(task_facts(parse(page).tasks))
            t5 = mark()
            for name, (a, b) in zip(names, ((t0, t1), (t1, t2), (t2, t3), (t4, t5)),
                                    strict=True):
                wall[name].append(b[0] - a[0])
                cpu[name].append(b[1] - a[1])
    result: dict[str, Any] = {"pages": len(pages), "facts": facts, "repeats": repeats,
                              "bytes_per_page": round(sum(map(len, pages)) / len(pages)),
                              "other_cpu_share": round(noise.other_share, 3)}
    for name in names:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        result[name] = {"wall_s": round(w, 4), "facts_per_s": round(facts / w),
                        "facts_per_cpu_s": round(facts / c),
                        "us_per_fact": round(1e6 * c / facts, 2)}
    return result


def _end_at_rank(channel: grpc.Channel, rank: int) -> int:
    """ended_at of the rank-th newest ended task (rank from 1)."""
    sort = tc.ListTasksRequest.Sort(
        field=tf.TaskField(task_summary_field=tf.TaskSummaryField(
            field=tf.TASK_SUMMARY_ENUM_FIELD_ENDED_AT)),
        direction=sd.SORT_DIRECTION_DESC)
    reply = TasksStub(channel).ListTasks(
        tc.ListTasksRequest(page=rank - 1, page_size=1, sort=sort), timeout=60)
    end = convert.micros(reply.tasks[0], "ended_at")
    if end is None:
        raise BenchError("the served task has no ended_at")
    return end


async def _poll(endpoint: str, watermark: int) -> dict[str, Any]:
    settings = ServeSettings.build(endpoint=endpoint, listen=f"{HOST}:0")
    sink = PrometheusSink(registry=CollectorRegistry(), up=lambda: True, self_status=SelfStatus,
                          version="bench")
    published = read = 0

    def publish(batch: Batch) -> None:
        nonlocal published
        published += len(batch.facts)
        sink.consume(batch)

    connection = Connection(ChannelFactory(settings.endpoint, settings.tls))
    poller = TaskFactsPoller(connection=connection, publish=publish, interval=5.0,
                             overlap_us=0, origin=FactsOrigin(watermark))
    page = poller._page

    async def counting(cursor: int, number: int) -> Any:
        nonlocal read
        tasks = await page(cursor, number)
        read += len(tasks)
        return tasks

    poller._page = counting  # type: ignore[method-assign,assignment]  # count rows per page
    await connection.channel.channel_ready()  # connection set-up is not what we measure
    cpu0, started = time.process_time(), time.monotonic()
    await poller.poll_once()
    wall, cpu = time.monotonic() - started, time.process_time() - cpu0
    await connection.close()
    return {"facts": published, "rows_read": read, "pages": poller.pages,
            "wall_s": round(wall, 3), "client_cpu_s": round(cpu, 3),
            "started": started, "ended": started + wall}


def measure_poller(server: Child, info: dict[str, Any], tasks: int) -> dict[str, Any]:
    """TaskFactsPoller.poll_once() over the `tasks` newest ended tasks of the served session."""
    with grpc.insecure_channel(urlparse(info["endpoint"]).netloc) as channel:
        watermark = _end_at_rank(channel, min(tasks, int(info["tasks"])))
    with CpuSampler(server.pid) as sim_cpu, window() as noise:
        result = asyncio.run(_poll(info["endpoint"], watermark))
    server_cpu = sim_cpu.cpu_between(result.pop("started"), result.pop("ended"))
    pages = max(result["pages"], 1)
    result.update({
        "facts_per_s": round(result["facts"] / result["wall_s"]),
        "client_facts_per_cpu_s": round(result["facts"] / max(result["client_cpu_s"], 1e-9)),
        "rows_read_per_fact": round(result["rows_read"] / max(result["facts"], 1), 2),
        "server_cpu_s": round(server_cpu, 3),
        "server_ms_per_page": round(1000 * server_cpu / pages, 2),
        "client_ms_per_page": round(1000 * result["client_cpu_s"] / pages, 2),
        "other_cpu_share": round(max(noise.other_share - server_cpu / result["wall_s"], 0.0), 3),
    })
    return result


def facts_rows(pages: dict[str, Any] | None, poller: dict[str, Any] | None) -> list[Row]:
    """Rows for the task facts measurements."""
    return (_pages_rows(pages) if pages else []) + (_poller_rows(poller) if poller else [])


def _pages_rows(pages: dict[str, Any]) -> list[Row]:
    e2e = pages["end_to_end"]
    rows = [
        ratio_row(f"facts: {pages['facts'] // 1000}k from pages, end to end", e2e["facts_per_s"],
                  TARGET_FACTS_PER_S, "/s", means="task facts per wall-second from page bytes: "
                  "parse, convert to columns, fold into the metrics"),
        ratio_row("facts: end to end per CPU-second", e2e["facts_per_cpu_s"],
                  TARGET_FACTS_PER_S, "/s", means="the same per CPU-second of this thread"),
    ]
    for stage, what in (("parse", "ListTasksResponse.FromString"),
                        ("convert", "collectors.convert.task_facts, to columns"),
                        ("aggregate", "FactMetrics.add, numpy")):
        figures = pages[stage]
        rows.append(info_row(f"facts: {stage} alone", figures["facts_per_cpu_s"], "/CPU-s",
                             means=f"facts per CPU-second through {what} alone",
                             note=f"{figures['us_per_fact']:.2f} us/fact"))
    rows.append(other_row("facts: other processes' CPU", pages["other_cpu_share"]))
    return rows


def _poller_rows(poller: dict[str, Any]) -> list[Row]:
    return [
        info_row(f"facts: poll_once over {poller['facts'] // 1000}k served", poller["wall_s"],
                 "s", means="one TaskFactsPoller pass over the newest ended tasks, simulator "
                 "serving", note=f"{poller['pages']} pages, {poller['rows_read_per_fact']:g} "
                 "rows read/fact"),
        # Not the target's measure: the single-process simulator serving the pages bounds it.
        info_row("facts: poll_once facts/s (wall)", poller["facts_per_s"], "/s",
                 means="facts published per second by that pass; the simulator serving the "
                       "pages bounds it, see CPU/page"),
        info_row("facts: poll_once client facts/CPU-s", poller["client_facts_per_cpu_s"], "/s",
                 means="facts per CPU-second of the polling process"),
        info_row("facts: poll_once CPU/page client|server",
                 f"{poller['client_ms_per_page']:.1f} | {poller['server_ms_per_page']:.1f}", "ms",
                 means="CPU per 1,000-task page: the poller's, then the simulator's"),
    ]
