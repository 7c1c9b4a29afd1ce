"""Benchmark the exporter: event ingest against a bare receiver, task facts, /metrics, memory, RPCs.

1. Ingest, live: `simulate --scenario steady --rate R` in its own process. On that simulator, one
   after the other: (a) the shared bare grpcio receiver (shared/tools/bare_receive.py, kinds
   new_task,task_status_update: the two the exporter asks for) reads the session's stream for
   `--seconds`; (b) `armonik-observe serve --max-followed-sessions 1` follows the session, and its
   armonik_observe_events_received_total is read from /metrics around a window of the same length
   that opens once it has received the snapshot the server replays on subscription (bare
   subscribes within a second of the session's start, so its snapshot is small; the exporter's is
   not, and would flatter it). Sequential rather than both at once: two streams would double the
   simulator's work per event and put three busy processes on two cores. The facts poller is
   parked (--facts-interval 3600) so that the exporter's CPU is the event path's, plus the cheap
   10 s polls; measure 6 runs the defaults. CPU comes from psutil over each window. The simulator
   delivers ~10k events/s per stream at best: when it limits, compare events per CPU-second.
   With --aio, (c) a bare grpc.aio loop (the exporter's transport, no processing) runs as well.
   Ingest, replay: a finished session of `--replay-tasks` tasks (bench.serve_finished) replays
   one NEW_TASK per task on subscription as fast as the server sends: the time a bare sync grpcio
   loop, (with --aio) a bare grpc.aio loop, and the exporter's EventStreams and pipeline take to
   receive all of them, each in a child process of this module; the arms alternate
   `--replay-rounds` times (default 3) and the ratios are medians of each round's.
2. Task facts: prebuilt ListTasksResponse pages (1,000 TaskSummary each; bytes from a finished
   in-process simulator run via simulator.convert.list_tasks_response) parsed, converted to
   columns (collectors.convert.task_facts) and folded with numpy (FactMetrics.add): facts/s end
   to end and per stage.
   Then TaskFactsPoller.poll_once() over the `--poll-tasks` newest ended tasks of the served
   session: wall time, facts/s, pages, rows read, client and server CPU per page.
3. /metrics: a PrometheusSink filled to ~10k series, rendered as the HTTP handler does (the
   sink's fast renderer when the handler is given one, else the registry's encoders) as text,
   OpenMetrics and gzipped text, `--render-times` times or `--render-budget` seconds per format:
   p50/p99 wall and CPU. prometheus_client's own text encoder is timed beside it as a yardstick.
4. Memory: tracemalloc over a TaskTracker holding 200k in-flight tasks, id strings included; and
   what the same tasks cost once ended and remembered for duplicates.
5. Control-plane calls per minute from armonik_observe_rpc_duration_seconds_count by rpc, default
   intervals: idle (demo scenario at x0.1; runs in the background while the in-process figures
   are taken, since it needs only wall time) and under load (steady at `--load-rate`). Calls are
   counted from just after the first polls over `--idle-seconds`/`--load-seconds` plus 2.5 s (so
   the count holds whole poll passes, not one more or one less) and scaled by 60 / that many
   seconds.
6. The busiest session: the same load run: events received against generated (tasks counted
   with CountTasksByStatus x 6 events), the stream backlog at the end, tasks tracked, the
   event-lag gauge, and tasks_ended_total growth against the task rate.

usage: python -m bench.bench_exporter [--seconds 5] [--rate R ...] [--aio] [--skip-live]
       [--skip-replay] [--skip-facts] [--skip-render] [--skip-memory] [--skip-idle] [--skip-load]
Writes bench/results/exporter.json. Takes 2 to 2.5 minutes with the defaults (3 on a machine
busy with other work; --aio adds half a minute). "other processes' CPU" rows and "others" in the
verdicts say how many cores other processes took meanwhile: above 0.2, read ratios, not rates.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import inspect
import json
import math
import re
import statistics
import sys
import time
import tracemalloc
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import grpc
from armonik.protogen.client.events_service_pb2_grpc import EventsStub
from armonik.protogen.client.tasks_service_pb2_grpc import TasksStub
from armonik.protogen.common import events_common_pb2 as ev
from armonik.protogen.common import sort_direction_pb2 as sd
from armonik.protogen.common import tasks_common_pb2 as tc
from armonik.protogen.common import tasks_fields_pb2 as tf
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from armonik_observe.collectors import convert
from armonik_observe.collectors.channel import ChannelFactory
from armonik_observe.collectors.facts import TaskFactsPoller
from armonik_observe.collectors.retry import Connection
from armonik_observe.collectors.tracker import Budget, TaskTracker
from armonik_observe.config import ServeSettings
from armonik_observe.exporters.fact_metrics import FactMetrics
from armonik_observe.exporters.http import render_metrics
from armonik_observe.exporters.prometheus import PrometheusSink, SelfStatus
from armonik_observe.fact_columns import TaskFacts
from armonik_observe.model import (
    HealthSample,
    PartitionInfo,
    SessionInfo,
    StatusCounts,
    TaskFact,
    TaskStatus,
    Versions,
)
from armonik_observe.pipeline import Batch
from armonik_observe.runner import tune_process
from armonik_observe.service import Exporter
from armonik_observe.simulator.clock import MICROS, ManualClock
from armonik_observe.simulator.convert import list_tasks_response
from armonik_observe.simulator.server import Simulator
from bench import common
from bench.bare_receive import run_bare
from bench.common import BenchError, Child, CpuSampler
from bench.control_plane import count_tasks, running_session
from bench.report import FAILURES, Row, print_table, ratio_verdict, short, write_results
from bench.serve_finished import READY, bag_scenario

NAME = "exporter"
HOST = "127.0.0.1"
DEFAULT_RATES = (2000.0, 4500.0)
KINDS = "new_task,task_status_update"  # what EventStreams asks for (collectors/events.py)
# Per steady task, of those two kinds: NEW_TASK, then PENDING, SUBMITTED, DISPATCHED, PROCESSING
# and COMPLETED updates.
EVENTS_PER_TASK = 6
TARGET_INGEST_RATIO = 0.9
TARGET_FACTS_PER_S = 200_000.0
TARGET_RENDER_P99_MS = 50.0
TARGET_SERIES = 10_000
TARGET_BYTES_PER_TASK = 300.0
SATURATED = 0.85  # a CPU share above this means the process is CPU-bound
NOISY = 0.2  # other processes took more than this many cores: figures are noisy
KEEPS_UP = 0.95
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
EXPORTER_READY = "exporter:"
EVENTS = "armonik_observe_events_received_total"
RPC_COUNT = "armonik_observe_rpc_duration_seconds_count"
RPC_SUM = "armonik_observe_rpc_duration_seconds_sum"
ENDED = "armonik_tasks_ended_total"
TRACKED = "armonik_observe_tasks_tracked"
TRANSITIONS = "armonik_task_status_transitions_total"
LAG = "armonik_observe_event_lag_seconds"
PASS_SLACK_S = 2.5  # a call window ends half a facts interval after a whole number of passes
FACTS_PAGE = 1000  # TaskFactsPoller's page size
CATCH_UP_S = 2.0  # live: how long the exporter may take to drain what queued during its snapshot
CAUGHT_UP_S = 0.25  # ... down to this many seconds of generation
REPLAY_CAP_S = 25.0  # a replay receiver stops there if it has not got every event (busy machine)


# ----------------------------------------------------------------------------------- helpers


@dataclass
class Scrape:
    """One /metrics read: every sample, and the monotonic time it was taken (mid-request)."""

    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    at: float

    def total(self, name: str, **labels: str) -> float:
        """Sum of the samples called `name` whose labels include `labels` (NaN skipped)."""
        wanted = set(labels.items())
        return sum(v for (n, lab), v in self.samples.items()
                   if n == name and wanted <= set(lab) and not math.isnan(v))

    def by(self, name: str, label: str) -> dict[str, float]:
        """Samples called `name`, summed by one label."""
        out: dict[str, float] = {}
        for (n, lab), value in self.samples.items():
            if n == name:
                key = dict(lab).get(label, "")
                out[key] = out.get(key, 0.0) + value
        return out


def scrape(url: str, timeout: float = 10.0) -> Scrape:
    """Read and parse the exporter's /metrics."""
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = response.read().decode()
    at = (started + time.monotonic()) / 2
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return Scrape(samples, at)


def scrape_at(url: str, at: float) -> Scrape:
    """`scrape(url)` once the monotonic clock reaches `at`."""
    time.sleep(max(at - time.monotonic(), 0.0))
    return scrape(url)


def metrics_url(child: Child) -> str:
    """The /metrics URL from `serve`'s readiness line."""
    match = re.search(r"metrics on (\S+/metrics)", child.ready)
    if not match:
        raise BenchError(f"no metrics URL in {child.ready!r}")
    return match.group(1)


def start_exporter(endpoint: str, *options: str) -> Child:
    """`armonik-observe serve` against `endpoint`, metrics on a free port, once it prints ready."""
    cmd = common.cli_command("--log-level", "WARNING", "serve", "-e", endpoint,
                             "--listen", f"{HOST}:0", *options)
    return common.start_process(cmd, name="exporter", ready_prefix=EXPORTER_READY, timeout=30)


def start_simulator(*options: str) -> tuple[Child, str]:
    """`armonik-observe simulate` on a free port: the child and its host:port."""
    port = common.free_port(HOST)
    cmd = common.cli_command("simulate", "--listen", f"{HOST}:{port}", *options)
    return common.start_process(cmd, name="simulator", port=port, timeout=30), f"{HOST}:{port}"


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll `check` until it holds; BenchError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def other_cpu() -> Iterator[dict[str, float]]:
    """Cores other processes used while the body ran (this process's CPU taken out)."""
    out: dict[str, float] = {}
    busy0, own0, wall0 = common.machine_busy_seconds(), time.process_time(), time.monotonic()
    yield out
    wall = time.monotonic() - wall0
    others = common.machine_busy_seconds() - busy0 - (time.process_time() - own0)
    out["other_cpu_share"] = round(max(others, 0.0) / max(wall, 1e-9), 3)


def per_s(count: float, seconds: float) -> float:
    """count / seconds, rounded; 0 for an empty window."""
    return round(count / seconds, 1) if seconds > 0 else 0.0


# ------------------------------------------------------------------------ 1. live ingest


def measure_live(rate: float, seconds: float, aio: bool) -> dict[str, Any]:
    """On one steady simulator at `rate` tasks/s: bare receiver, [bare aio], then the exporter."""
    sim, target = start_simulator("--scenario", "steady", "--rate", f"{rate:g}", "--speed", "1")
    endpoint = f"http://{target}"
    arms: dict[str, dict[str, Any]] = {}
    try:
        with grpc.insecure_channel(target) as channel:
            session = running_session(channel)
            arms["bare"] = _live_bare(channel, endpoint, session, seconds, sim.pid)
            if aio:
                arms["bare-aio"] = _live_worker(channel, endpoint, session, seconds, sim.pid)
            arms["exporter"] = _live_exporter(channel, endpoint, session, seconds, sim.pid, rate)
    finally:
        common.stop_process(sim)
    for figures in arms.values():
        figures["limit"] = arm_limit(figures)
    bare, exporter = arms["bare"], arms["exporter"]
    return {
        "rate_tasks_per_s": rate,
        "offered_events_per_s": rate * EVENTS_PER_TASK,
        "arms": arms,
        "ratio_events_per_s": round(exporter["events_per_s"] / bare["events_per_s"], 3),
        "ratio_events_per_cpu_s": round(
            exporter["events_per_cpu_s"] / bare["events_per_cpu_s"], 3),
    }


def _arm_figures(events: float, wall: float, cpu: float, sim_cpu: float, busy: float,
                 generated_events_per_s: float) -> dict[str, Any]:
    return {
        "events": int(events),
        "wall_s": round(wall, 3),
        "events_per_s": per_s(events, wall),
        "cpu_s": round(cpu, 3),
        "cpu_share": round(cpu / wall, 3),
        "events_per_cpu_s": per_s(events, max(cpu, 1e-9)),
        "generated_events_per_s": round(generated_events_per_s, 1),
        "simulator_cpu_share": round(sim_cpu / wall, 3),
        "other_cpu_share": round(max(busy - sim_cpu - cpu, 0.0) / wall, 3),
    }


def _live_bare(channel: grpc.Channel, endpoint: str, session: str, seconds: float,
               sim_pid: int) -> dict[str, Any]:
    tasks0, counted0 = count_tasks(channel, session)
    with CpuSampler(sim_pid) as sim_cpu, CpuSampler(None) as machine:
        report, exited = run_bare(endpoint, session, seconds, kinds=KINDS)
    tasks1, counted1 = count_tasks(channel, session)
    wall = float(report["wall_s"])
    figures = _arm_figures(
        report["events"], wall, float(report["cpu_s"]),
        sim_cpu.cpu_between(exited - wall, exited), machine.cpu_between(exited - wall, exited),
        (tasks1 - tasks0) / (counted1 - counted0) * EVENTS_PER_TASK)
    # bare counts from its subscription: its snapshot (a NEW_TASK per task then) is included.
    figures["snapshot_share_at_least"] = round(tasks0 / max(report["events"], 1), 3)
    return figures


def _live_worker(channel: grpc.Channel, endpoint: str, session: str, seconds: float,
                 sim_pid: int, kind: str = "bare-aio") -> dict[str, Any]:
    tasks0, counted0 = count_tasks(channel, session)
    cmd = [sys.executable, "-m", "bench.bench_exporter", "--worker", kind, "--endpoint",
           endpoint, "--session", session, "--worker-seconds", f"{seconds:g}"]
    with CpuSampler(sim_pid) as sim_cpu, CpuSampler(None) as machine:
        report, exited = common.run_json(cmd, timeout=seconds + 30)
    tasks1, counted1 = count_tasks(channel, session)
    wall = float(report["wall_s"])
    return _arm_figures(
        report["events"], wall, float(report["cpu_s"]),
        sim_cpu.cpu_between(exited - wall, exited), machine.cpu_between(exited - wall, exited),
        (tasks1 - tasks0) / (counted1 - counted0) * EVENTS_PER_TASK)


def _live_exporter(channel: grpc.Channel, endpoint: str, session: str, seconds: float,
                   sim_pid: int, rate: float) -> dict[str, Any]:
    child = start_exporter(endpoint, "--max-followed-sessions", "1", "--facts-interval", "3600")
    try:
        url = metrics_url(child)
        with CpuSampler(child.pid) as exp_cpu, CpuSampler(sim_pid) as sim_cpu, \
                CpuSampler(None) as machine:
            wait_for(lambda: scrape(url).total(EVENTS) > 0, 30, "the exporter's first event")
            snapshot, _ = count_tasks(channel, session)  # >= the tasks it replays
            wait_for(lambda: scrape(url).total(EVENTS, kind="new_task") >= snapshot, 60,
                     "the exporter to receive its snapshot")
            # Live events queued while the snapshot was sent: drain them before the window,
            # or its rate would be the catch-up rate, not the live one (unless it never can).
            backlog0 = _backlog(channel, session, url, snapshot)
            deadline = time.monotonic() + CATCH_UP_S
            while backlog0 > CAUGHT_UP_S * rate * EVENTS_PER_TASK and \
                    time.monotonic() < deadline:
                time.sleep(0.25)
                backlog0 = _backlog(channel, session, url, snapshot)
            tasks0, counted0 = count_tasks(channel, session)
            before = scrape(url)
            time.sleep(seconds)
            after = scrape(url)
            tasks1, counted1 = count_tasks(channel, session)
            backlog1 = _backlog(channel, session, url, snapshot)
    finally:
        common.stop_process(child)
    window = (before.at, after.at)
    figures = _arm_figures(
        after.total(EVENTS) - before.total(EVENTS), after.at - before.at,
        exp_cpu.cpu_between(*window), sim_cpu.cpu_between(*window),
        machine.cpu_between(*window), (tasks1 - tasks0) / (counted1 - counted0) * EVENTS_PER_TASK)
    figures["snapshot_events_skipped"] = snapshot
    figures["backlog_at_window_start"] = backlog0
    figures["backlog_at_window_end"] = backlog1
    figures["caught_up_before_window"] = backlog0 <= CAUGHT_UP_S * rate * EVENTS_PER_TASK
    figures["tasks_tracked"] = int(after.total(TRACKED))
    figures["dropped"] = after.by("armonik_observe_dropped_total", "reason")
    return figures


def _backlog(channel: grpc.Channel, session: str, url: str, snapshot: int) -> int:
    """Events the stream still owes the exporter: a NEW_TASK per task of its snapshot (about
    `snapshot`), then 6 per task created since, minus what it received."""
    tasks, _ = count_tasks(channel, session)
    owed = snapshot + EVENTS_PER_TASK * (tasks - snapshot)
    return max(int(owed - scrape(url).total(EVENTS)), 0)


def arm_limit(figures: dict[str, Any]) -> str:
    """What limited one receiver: nothing, the simulator's CPU, its own, or the machine."""
    if figures.get("caught_up_before_window") is False:
        prefix = "behind (backlog {:,} -> {:,} ev); ".format(
            figures["backlog_at_window_start"], figures["backlog_at_window_end"])
        return prefix + _limit(figures, check_keeps_up=False)
    return _limit(figures)


def _limit(figures: dict[str, Any], check_keeps_up: bool = True) -> str:
    if check_keeps_up and figures["events_per_s"] >= KEEPS_UP * figures["generated_events_per_s"]:
        return "keeps up"
    if figures["simulator_cpu_share"] >= SATURATED:
        return "simulator CPU"
    if figures["cpu_share"] >= SATURATED:
        return "receiver CPU"
    used = figures["simulator_cpu_share"] + figures["cpu_share"] + figures["other_cpu_share"]
    if used >= SATURATED * 2:
        return f"machine busy (others {figures['other_cpu_share']:.2f} core)"
    return "neither CPU-bound (per-message latency)"


# ---------------------------------------------------------------------- 1b. replay ingest


def _request(session: str) -> Any:
    kinds = [ev.EVENTS_ENUM_NEW_TASK, ev.EVENTS_ENUM_TASK_STATUS_UPDATE]
    return ev.EventSubscriptionRequest(session_id=session, returned_events=kinds)


def worker_bare(endpoint: str, session: str, count: int, seconds: float) -> dict[str, Any]:
    """A bare sync grpcio loop (bare_receive.py's) until `count` events or `seconds`."""
    channel = grpc.insecure_channel(urlparse(endpoint).netloc)
    call = EventsStub(channel).GetEvents(_request(session))
    received = 0
    cpu0, wall0 = time.process_time(), time.monotonic()
    for _ in call:
        received += 1
        if received >= count or time.monotonic() - wall0 >= seconds:
            break
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    call.cancel()
    return {"events": received, "wall_s": wall, "cpu_s": cpu}


async def worker_bare_aio(endpoint: str, session: str, count: int,
                          seconds: float) -> dict[str, Any]:
    """A bare grpc.aio loop (the exporter's transport, no processing), same limits."""
    async with grpc.aio.insecure_channel(urlparse(endpoint).netloc) as channel:
        call = EventsStub(channel).GetEvents(_request(session))
        received = 0
        cpu0, wall0 = time.process_time(), time.monotonic()
        async for _ in call:
            received += 1
            if received >= count or time.monotonic() - wall0 >= seconds:
                break
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        call.cancel()
    return {"events": received, "wall_s": wall, "cpu_s": cpu}


async def worker_exporter(endpoint: str, session: str, count: int,
                          seconds: float) -> dict[str, Any]:
    """The exporter's EventStreams and pipeline (Prometheus sink), same limits.

    The pollers are not started: discovery would drop the session, which is closed. The process
    runs under the exporter's settings (runner.tune_process), as `serve` does.
    """
    tune_process()
    exporter = Exporter(ServeSettings.build(endpoint=endpoint, listen=f"{HOST}:0"))
    streams = exporter.streams
    stop = asyncio.Event()
    await exporter.pipeline.start()
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


def run_worker(kind: str, endpoint: str, session: str, count: int, seconds: float) -> None:
    """Internal: one receiver, run as a child process; prints one JSON line."""
    count = count or sys.maxsize
    if kind == "bare":
        report = worker_bare(endpoint, session, count, seconds)
    elif kind == "bare-aio":
        report = asyncio.run(worker_bare_aio(endpoint, session, count, seconds))
    else:
        report = asyncio.run(worker_exporter(endpoint, session, count, seconds))
    print(json.dumps(report), flush=True)


def measure_replay(server: Child, info: dict[str, Any], kinds: list[str],
                   rounds: int) -> dict[str, Any]:
    """Each receiver in turn reads the finished session's snapshot replay to its end, `rounds`
    times alternated; ratios are medians of each round's (the machine's speed drifts)."""
    count = int(info["tasks"])
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for round_ in range(rounds):
        for kind in kinds:
            print(f"  replay {round_ + 1}/{rounds}: {kind} receiving {count:,} events ...",
                  flush=True)
            runs[kind].append(_replay_arm(server, info, kind))
    arms = {kind: _median_run(figures) for kind, figures in runs.items()}
    result: dict[str, Any] = {"tasks": count, "rounds": rounds, "arms": arms, "runs": runs}
    if "bare" in runs and "exporter" in runs:
        pairs = list(zip(runs["bare"], runs["exporter"], strict=True))
        for key, name in (("ratio_time", "wall_s"), ("ratio_events_per_s", "events_per_s"),
                          ("ratio_events_per_cpu_s", "events_per_cpu_s")):
            ratios = sorted(e[name] / b[name] for b, e in pairs)
            result[key] = round(statistics.median(ratios), 3)
            result[f"{key}_range"] = [round(ratios[0], 3), round(ratios[-1], 3)]
    return result


def _replay_arm(server: Child, info: dict[str, Any], kind: str) -> dict[str, Any]:
    count = int(info["tasks"])
    cmd = [sys.executable, "-m", "bench.bench_exporter", "--worker", kind,
           "--endpoint", info["endpoint"], "--session", info["sessions"][0],
           "--count", str(count), "--worker-seconds", f"{REPLAY_CAP_S:g}"]
    with CpuSampler(server.pid) as sim_cpu, CpuSampler(None) as machine:
        report, exited = common.run_json(cmd, timeout=REPLAY_CAP_S + 60)
    wall, cpu = float(report["wall_s"]), float(report["cpu_s"])
    server_cpu = sim_cpu.cpu_between(exited - wall, exited)
    busy = machine.cpu_between(exited - wall, exited)
    return {
        **report,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "events_per_s": per_s(report["events"], wall),
        "events_per_cpu_s": per_s(report["events"], max(cpu, 1e-9)),
        "cpu_share": round(cpu / wall, 3),
        "server_cpu_share": round(server_cpu / wall, 3),
        "other_cpu_share": round(max(busy - server_cpu - cpu, 0.0) / wall, 3),
        "complete": report["events"] >= count,
    }


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median events per CPU-second (its figures stay consistent)."""
    ordered = sorted(runs, key=lambda run: run["events_per_cpu_s"])
    return {**ordered[(len(ordered) - 1) // 2], "complete": all(r["complete"] for r in runs)}


# --------------------------------------------------------------------------- 2. task facts


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

    with other_cpu() as noise:
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
                              **noise}
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
                             overlap_us=0, watermark_us=watermark)
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
    with CpuSampler(server.pid) as sim_cpu, other_cpu() as noise:
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
        "other_cpu_share": round(max(noise["other_cpu_share"] - server_cpu / result["wall_s"],
                                     0.0), 3),
    })
    return result


# ------------------------------------------------------------------------------ 3. render


def filled_sink(partitions: int = 20, sessions: int = 200, fact_partitions: int = 7,
                applications: int = 3, fact_statuses: int = 3) -> PrometheusSink:
    """A PrometheusSink on a fresh registry with every family populated: ~10k series.

    Polled state: 20 partitions x 13 statuses, 200 followed sessions x 13 statuses; task facts:
    7 partitions x 3 applications x 3 end statuses, each with 4 histograms of 21 buckets; event
    transitions: 20 partitions x 13 statuses; RPC timings for 7 RPCs; the self-metrics.
    """
    statuses = [s.name for s in TaskStatus if s != TaskStatus.UNSPECIFIED]
    now = int(time.time() * MICROS)
    session_ids = [str(uuid.UUID(int=i + 1, version=4)) for i in range(sessions)]
    partition_ids = [f"partition-{i:02d}" for i in range(partitions)]
    status = SelfStatus(
        events_received={"new_task": 123456, "task_status_update": 654321},
        stream_states={"connected": sessions}, reconnects=3, last_event_at=time.time(),
        tasks_tracked=150_000, followed=sessions, unfollowed=12,
        dropped={"duplicate": 10, "replay": 5000, "regression": 2},
        stuck={(p, s): 1 for p in partition_ids[:5] for s in ("SUBMITTED", "PROCESSING")},
        lag_seconds={s: 0.5 for s in session_ids},
    )
    sink = PrometheusSink(registry=CollectorRegistry(), up=lambda: True,
                          self_status=lambda: status, version="bench")
    counts = [StatusCounts(now, "partition", p, tuple((s, 10) for s in statuses))
              for p in partition_ids]
    counts += [StatusCounts(now, "session", s, tuple((st, 5) for st in statuses))
               for s in session_ids]
    sink.consume(Batch(
        sessions=[SessionInfo(s, "RUNNING", (partition_ids[i % partitions],), now,
                              default_partition=partition_ids[i % partitions])
                  for i, s in enumerate(session_ids)],
        partitions=[PartitionInfo(p, 10, 2, 1, 0, ()) for p in partition_ids],
        counts=counts,
        health=[HealthSample(now, name, "HEALTHY") for name in ("database", "object", "queue")],
        versions=Versions(core="0.30.0", api="3.21.0"),
    ))
    facts: list[TaskFact] = []
    end_statuses = ["COMPLETED", "ERROR", "CANCELLED", "TIMEOUT", "RETRIED"][:fact_statuses]
    for p in partition_ids[:fact_partitions]:
        for a in range(applications):
            for st in end_statuses:
                for k in range(25):  # spread over the buckets
                    micros = int(10 ** (3 + k * 0.3))
                    facts.append(TaskFact(
                        task_id=f"t{len(facts)}", session_id=session_ids[0], status=st,
                        partition_id=p, application_name=f"app-{a}", application_version="1",
                        created_at=now - micros, submitted_at=now - micros,
                        received_at=now - micros // 2, acquired_at=None, fetched_at=None,
                        started_at=now - micros // 3, processed_at=None, ended_at=now,
                        creation_to_end=micros, processing_to_end=micros // 3,
                        received_to_end=micros // 2))
    sink.consume(Batch(facts=TaskFacts.of(facts)))
    for rpc in ("ListSessions", "ListPartitions", "CountTasksByStatus", "ListTasks",
                "CheckHealth", "ListVersions", "GetEvents"):
        sink.observe_rpc(rpc, "OK", 0.004)
    for p in partition_ids:
        for st in statuses:
            sink.transitions.labels(p, st).inc(7)
    return sink


def handler_render(sink: PrometheusSink) -> tuple[str, Callable[[str, str], bytes]]:
    """Render as MetricsHttpServer's /metrics handler would for this sink's registry.

    The handler passes the sink's own renderer to render_metrics when both know of one.
    """
    fast = getattr(sink, "render", None)
    if fast is not None and "render" in inspect.signature(render_metrics).parameters:
        return "sink.render", lambda accept, encoding: render_metrics(
            sink.registry, accept, encoding, [], fast)[0]
    return "registry encoders", lambda accept, encoding: render_metrics(
        sink.registry, accept, encoding, [])[0]


def series_count(body: bytes) -> int:
    """Samples in a text exposition: lines that are neither comments nor blank."""
    return sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def _time_renders(render: Callable[[], bytes], times: int, budget: float) -> dict[str, Any]:
    render()  # warm up (label caches, first-call paths)
    walls: list[float] = []
    cpus: list[float] = []
    # Collector passes that ran inside the timed renders, by generation: the usual cause of a
    # render's tail when something allocates during it.
    passes = [0, 0, 0]

    def count_pass(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            passes[info["generation"]] += 1

    gc.collect()
    deadline = time.monotonic() + budget
    body = b""
    gc.callbacks.append(count_pass)
    try:
        while len(walls) < times and (len(walls) < 15 or time.monotonic() < deadline):
            w0, c0 = time.perf_counter(), time.thread_time()
            body = render()
            cpus.append(1000 * (time.thread_time() - c0))
            walls.append(1000 * (time.perf_counter() - w0))
    finally:
        gc.callbacks.remove(count_pass)
    walls.sort()
    cpus.sort()
    return {"renders": len(walls), "p50_ms": round(percentile(walls, 0.5), 2),
            "p99_ms": round(percentile(walls, 0.99), 2), "max_ms": round(walls[-1], 2),
            "cpu_p50_ms": round(percentile(cpus, 0.5), 2),
            "cpu_p99_ms": round(percentile(cpus, 0.99), 2), "bytes": len(body),
            "gc_passes": passes}


def measure_render(times: int, budget: float) -> dict[str, Any]:
    """/metrics at ~10k series: text, OpenMetrics and gzipped text, as the handler renders."""
    sink = filled_sink()
    path, render = handler_render(sink)
    text = render("", "")
    library_text = generate_latest(sink.registry)
    result: dict[str, Any] = {"path": path, "series": series_count(text),
                              "library_series": series_count(library_text),
                              "text_bytes": len(text), "formats": {}}
    with other_cpu() as noise:
        for name, accept, encoding in (("text", "", ""), ("openmetrics", OPENMETRICS, ""),
                                       ("text+gzip", "", "gzip")):
            result["formats"][name] = _time_renders(
                functools.partial(render, accept, encoding), times, budget)
        # The yardstick: prometheus_client's own text encoder over the same registry.
        result["library_text"] = _time_renders(
            lambda: generate_latest(sink.registry), times, budget / 2)
    result.update(noise)
    result["collect_ms"] = _collect_breakdown(sink.registry)
    return result


def _collect_breakdown(registry: CollectorRegistry, rounds: int = 5) -> dict[str, float]:
    """Median ms of collect() per registered collector: the part before any formatting."""
    out: dict[str, float] = {}
    for collector in list(registry._collector_to_names):  # a benchmark may peek
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            list(collector.collect())
            samples.append(1000 * (time.perf_counter() - started))
        label = type(collector).__name__
        out[label] = round(out.get(label, 0.0) + statistics.median(samples), 2)
    return out


# ------------------------------------------------------------------------------ 4. memory


def measure_memory(tasks: int) -> dict[str, Any]:
    """Bytes per in-flight task of a TaskTracker, id strings included (tracemalloc); then what
    the same tasks cost once ended (ids kept a while to recognise late duplicates)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        # Ids as the stream hands them over: one fresh 36-character str per task.
        ids = [str(uuid.UUID(int=(i * 0x9E3779B97F4A7C15) % (1 << 128), version=4))
               for i in range(tasks)]
        with_ids = tracemalloc.get_traced_memory()[0]
        list_bytes = sys.getsizeof(ids)
        tracker = TaskTracker(Budget())
        now = int(time.time())
        for task_id in ids:
            tracker.report(task_id, "CREATING", now, True)
            tracker.report(task_id, "SUBMITTED", now + 1)
        gc.collect()
        in_flight = tracemalloc.get_traced_memory()[0]
        tracked = len(tracker)
        for task_id in ids:
            tracker.report(task_id, "COMPLETED", now + 2)
        gc.collect()
        ended = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    if tracked != tasks:
        raise BenchError(f"tracker held {tracked} tasks, expected {tasks}")
    remembered = sum(1 for t in ids[-1000:] if tracker.report(t, "COMPLETED", now + 2).reason
                     == "duplicate")
    id_bytes = (with_ids - base - list_bytes) / tasks
    structure = (in_flight - with_ids) / tasks
    return {"tasks": tasks, "bytes_per_task": round(id_bytes + structure, 1),
            "id_string_bytes": round(id_bytes, 1), "tracker_bytes": round(structure, 1),
            "total_mib": round((id_bytes + structure) * tasks / 2**20, 1),
            "after_end_bytes_per_task": round(id_bytes + (ended - with_ids) / tasks, 1),
            "after_end_total_mib": round((ended - base - list_bytes) / 2**20, 1),
            "ended_ids_still_recognised_of_last_1000": remembered}


# -------------------------------------------------------------------------- 5/6. RPCs, load


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


def first_polls_done(url: str) -> bool:
    """Whether every poller has run once (each issues one of these RPCs)."""
    rpcs = scrape(url).by(RPC_COUNT, "rpc")
    return all(rpcs.get(r, 0) >= 1 for r in ("ListSessions", "CheckHealth", "ListTasks",
                                             "CountTasksByStatus"))


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


def measure_load(rate: float, seconds: float, step: float = 5.0) -> dict[str, Any]:
    """A default exporter on a steady simulator at `rate`: calls/min and how it keeps up."""
    sim, target = start_simulator("--scenario", "steady", "--rate", f"{rate:g}", "--speed", "1")
    try:
        with grpc.insecure_channel(target) as channel:
            session = running_session(channel)
            exporter = start_exporter(f"http://{target}")
            try:
                url = metrics_url(exporter)
                with CpuSampler(exporter.pid) as exp_cpu, CpuSampler(sim.pid) as sim_cpu, \
                        CpuSampler(None) as machine:
                    wait_for(lambda: scrape(url).total(EVENTS) > 0, 30, "the first event")
                    subscribed, _ = count_tasks(channel, session)  # >= its snapshot
                    wait_for(lambda: first_polls_done(url), 30, "the first polls")
                    tasks0, counted0 = count_tasks(channel, session)
                    scrapes = [scrape(url)]
                    deadline = scrapes[0].at + seconds + PASS_SLACK_S
                    while (now := time.monotonic()) < deadline:
                        time.sleep(min(step, deadline - now))
                        scrapes.append(scrape(url))
                    tasks1, counted1 = count_tasks(channel, session)
            finally:
                common.stop_process(exporter)
    finally:
        common.stop_process(sim)
    first, last = scrapes[0], scrapes[-1]
    wall = last.at - first.at
    cpu = exp_cpu.cpu_between(first.at, last.at)
    sim_share = sim_cpu.cpu_between(first.at, last.at) / wall
    others = machine.cpu_between(first.at, last.at) / wall - sim_share - cpu / wall
    generated_tasks = (tasks1 - tasks0) / (counted1 - counted0)
    events = last.total(EVENTS) - first.total(EVENTS)
    # What the stream owes by the end: a NEW_TASK per task of its snapshot (at most
    # `subscribed`), then 6 events per task created since.
    owed = subscribed + EVENTS_PER_TASK * (tasks1 - subscribed)
    backlog = max(owed - last.total(EVENTS), 0)
    lag = {dict(lab).get("session", ""): v for (n, lab), v in last.samples.items() if n == LAG}
    return {
        "rate_tasks_per_s": rate,
        "window_s": round(wall, 1),
        "generated_tasks_per_s": round(generated_tasks, 1),
        "generated_events_per_s": round(generated_tasks * EVENTS_PER_TASK, 1),
        "events_per_s": per_s(events, wall),
        "events_vs_generated": round(events / wall / (generated_tasks * EVENTS_PER_TASK), 3),
        "backlog_events_at_end": int(backlog),
        "behind_s_at_end": round(backlog / (generated_tasks * EVENTS_PER_TASK), 1),
        "tasks_tracked_at_end": int(last.total(TRACKED)),
        "event_lag_seconds": lag,
        "tasks_ended_per_s": per_s(last.total(ENDED) - first.total(ENDED), wall),
        "tasks_ended_total_at_end": int(last.total(ENDED)),
        "tasks_in_session_at_end": tasks1,
        "transitions_per_s": per_s(last.total(TRANSITIONS) - first.total(TRANSITIONS), wall),
        # Every ListTasks page but a pass's last is full: rows read, at most, per task counted.
        "facts_rows_read_per_end_at_most": round(
            (last.by(RPC_COUNT, "rpc").get("ListTasks", 0)
             - first.by(RPC_COUNT, "rpc").get("ListTasks", 0)) * FACTS_PAGE
            / max(last.total(ENDED) - first.total(ENDED), 1), 2),
        "dropped": last.by("armonik_observe_dropped_total", "reason"),
        "exporter_cpu_share": round(cpu / wall, 3),
        "simulator_cpu_share": round(sim_share, 3),
        "other_cpu_share": round(max(others, 0.0), 3),
        "calls": calls_per_minute(first, last, seconds),
        "timeline": [{
            "t_s": round(s.at - first.at, 1),
            "events": int(s.total(EVENTS)),
            "tasks_tracked": int(s.total(TRACKED)),
            "tasks_ended_total": int(s.total(ENDED)),
            "list_tasks_calls": int(s.by(RPC_COUNT, "rpc").get("ListTasks", 0)),
        } for s in scrapes],
    }


# ------------------------------------------------------------------------------- tables


def other_row(label: str, share: float) -> Row:
    """How many cores other processes used meanwhile: above NOISY the figures are noisy."""
    return Row(label, share, "cores", NOISY, "quiet" if share < NOISY else "NOISY")


def ratio_row(label: str, value: float, target: float = TARGET_INGEST_RATIO) -> Row:
    """A ratio against its target."""
    return Row(label, value, "", target, ratio_verdict(value, target))


def live_rows(runs: list[dict[str, Any]]) -> list[Row]:
    """Rows for the live ingest runs."""
    rows: list[Row] = []
    for run in runs:
        tag = f"live @{run['rate_tasks_per_s']:g}/s"
        arms = run["arms"]
        generated = arms["exporter"]["generated_events_per_s"]
        rows.append(Row(f"{tag} generated (2 kinds)", generated, "ev/s",
                        run["offered_events_per_s"]))
        for name, arm in arms.items():
            rows += [
                Row(f"{tag} {name} received", arm["events_per_s"], "ev/s",
                    verdict=f"limit: {arm['limit']}"),
                Row(f"{tag} {name} ev/CPU-s", arm["events_per_cpu_s"], "ev/s",
                    verdict=f"CPU {arm['cpu_share']:.2f}, simulator "
                            f"{arm['simulator_cpu_share']:.2f}, others "
                            f"{arm['other_cpu_share']:.2f}"),
            ]
        rows += [ratio_row(f"{tag} exporter/bare ev/s", run["ratio_events_per_s"]),
                 ratio_row(f"{tag} exporter/bare ev/CPU-s", run["ratio_events_per_cpu_s"])]
        if "bare-aio" in arms:
            aio = arms["bare-aio"]["events_per_cpu_s"]
            rows.append(Row(f"{tag} exporter/bare-aio ev/CPU-s",
                            round(arms["exporter"]["events_per_cpu_s"] / aio, 3)))
    return rows


def replay_rows(result: dict[str, Any]) -> list[Row]:
    """Rows for the snapshot replay."""
    rows: list[Row] = []
    tag = f"replay {result['tasks'] // 1000}k"  # each arm: its median round
    for kind, arm in result["arms"].items():
        rows += [
            Row(f"{tag}: {kind} time", arm["wall_s"], "s",
                verdict=("" if arm["complete"] else f"CAPPED at {arm['events']:,} events; ")
                + f"{arm['events_per_s']:,.0f} ev/s; CPU {arm['cpu_share']:.2f}, "
                        f"server {arm['server_cpu_share']:.2f}, "
                        f"others {arm['other_cpu_share']:.2f}"),
            Row(f"{tag}: {kind} ev/CPU-s", arm["events_per_cpu_s"], "ev/s"),
        ]
    if "ratio_events_per_s" in result:
        for label, key in (("ev/s", "ratio_events_per_s"), ("ev/CPU-s", "ratio_events_per_cpu_s")):
            low, high = result[f"{key}_range"]
            row = ratio_row(f"{tag}: exporter/bare {label}", result[key])
            row.verdict += f"; median of {result['rounds']}, {low:g} to {high:g}"
            rows.append(row)
    if "bare-aio" in result["arms"] and "exporter" in result["arms"]:
        arms = result["arms"]
        rows.append(Row(f"{tag}: exporter/bare-aio ev/CPU-s", round(
            arms["exporter"]["events_per_cpu_s"] / arms["bare-aio"]["events_per_cpu_s"], 3)))
    return rows


def facts_rows(pages: dict[str, Any] | None, poller: dict[str, Any] | None) -> list[Row]:
    """Rows for the task facts measurements."""
    rows: list[Row] = []
    if pages:
        e2e = pages["end_to_end"]
        rows.append(Row(f"facts: {pages['facts'] // 1000}k from pages, end to end",
                        e2e["facts_per_s"], "/s", TARGET_FACTS_PER_S,
                        ratio_verdict(e2e["facts_per_s"], TARGET_FACTS_PER_S)))
        rows.append(Row("facts: end to end per CPU-second", e2e["facts_per_cpu_s"], "/s",
                        TARGET_FACTS_PER_S,
                        ratio_verdict(e2e["facts_per_cpu_s"], TARGET_FACTS_PER_S)))
        for stage in ("parse", "convert", "aggregate"):
            figures = pages[stage]
            rows.append(Row(f"facts: {stage} alone", figures["facts_per_cpu_s"], "/CPU-s",
                            verdict=f"{figures['us_per_fact']:.2f} us/fact"))
        rows.append(other_row("facts: other processes' CPU", pages["other_cpu_share"]))
    if poller:
        rows += [
            Row(f"facts: poll_once over {poller['facts'] // 1000}k served", poller["wall_s"], "s",
                verdict=f"{poller['pages']} pages, {poller['rows_read_per_fact']:g} rows "
                        "read/fact"),
            # Not the target's measure: the single-process simulator serving the pages bounds it.
            Row("facts: poll_once facts/s (wall)", poller["facts_per_s"], "/s",
                verdict="with the simulator serving: see CPU/page"),
            Row("facts: poll_once client facts/CPU-s", poller["client_facts_per_cpu_s"], "/s"),
            Row("facts: poll_once CPU/page client|server",
                f"{poller['client_ms_per_page']:.1f} | {poller['server_ms_per_page']:.1f}",
                "ms"),
        ]
    return rows


def render_rows(result: dict[str, Any]) -> list[Row]:
    """Rows for /metrics rendering."""
    rows = [Row("render: series", result["series"], "", TARGET_SERIES,
                f"{result['text_bytes'] / 1024:.0f} KiB text; path: {result['path']}")]
    for name, figures in result["formats"].items():
        rows += [
            Row(f"render {name}: p50", figures["p50_ms"], "ms",
                verdict=f"CPU p50 {figures['cpu_p50_ms']:.1f} ms"),
            Row(f"render {name}: p99", figures["p99_ms"], "ms", TARGET_RENDER_P99_MS,
                ratio_verdict(figures["p99_ms"], TARGET_RENDER_P99_MS, False)
                + f" (n={figures['renders']}, CPU p99 {figures['cpu_p99_ms']:.1f} ms, gc passes "
                  f"gen0/1/2 {'/'.join(map(str, figures.get('gc_passes', ())))})"),
        ]
    library = result["library_text"]
    rows.append(Row("render: prometheus_client text p50", library["p50_ms"], "ms",
                    verdict=f"yardstick, n={library['renders']}"))
    rows.append(other_row("render: other processes' CPU", result["other_cpu_share"]))
    return rows


def calls_rows(label: str, calls: dict[str, Any]) -> list[Row]:
    """Rows for calls per minute, per RPC and in total."""
    rows = [Row(f"calls/min {label}: {rpc}", n, "/min",
                verdict=f"{calls['seconds_in_call_per_second'].get(rpc, 0):.3f} s in call/s")
            for rpc, n in calls["per_minute"].items() if n]
    rows.append(Row(f"calls/min {label}: total", calls["total_per_minute"], "/min",
                    verdict=f"counted over {calls['scaled_over_s']:g}s of passes"))
    return rows


def load_rows(result: dict[str, Any]) -> list[Row]:
    """Rows for the busiest-session run."""
    tag = f"busiest @{result['rate_tasks_per_s']:g}/s"
    lag = result["event_lag_seconds"]
    return [
        Row(f"{tag} generated (2 kinds)", result["generated_events_per_s"], "ev/s",
            verdict=f"{result['generated_tasks_per_s']:,.0f} tasks/s"),
        Row(f"{tag} received", result["events_per_s"], "ev/s", result["generated_events_per_s"],
            ratio_verdict(result["events_per_s"], result["generated_events_per_s"])),
        Row(f"{tag} stream backlog at end", result["backlog_events_at_end"], "ev",
            verdict=f"~{result['behind_s_at_end']:g}s of generation behind"),
        Row(f"{tag} event_lag_seconds", max(lag.values()) if lag else "empty", "s" if lag else "",
            verdict="" if lag else "family exposed, no sample"),
        Row(f"{tag} tasks tracked at end", result["tasks_tracked_at_end"], ""),
        Row(f"{tag} tasks_ended_total growth", result["tasks_ended_per_s"], "/s",
            result["generated_tasks_per_s"],
            ratio_verdict(result["tasks_ended_per_s"], result["generated_tasks_per_s"])),
        Row(f"{tag} facts: ListTasks rows read/end", result["facts_rows_read_per_end_at_most"],
            "", verdict="at most (calls x 1000 / tasks_ended_total growth)"),
        Row(f"{tag} exporter CPU share", result["exporter_cpu_share"], "",
            verdict=f"simulator {result['simulator_cpu_share']:.2f}"),
        other_row(f"{tag} other processes' CPU", result["other_cpu_share"]),
    ]


# --------------------------------------------------------------------------------- main


def attempt(measure: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run one measurement; a failure becomes {"error": ...} so that the others still run."""
    try:
        return measure(*args)
    except FAILURES as error:
        print(f"  failed: {short(error, 160)}", file=sys.stderr, flush=True)
        return {"measure": measure.__name__, "args": list(args), "error": short(error, 160)}


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="window of each live ingest arm (default 5)")
    parser.add_argument("--rate", type=float, action="append",
                        help="steady tasks/s for live ingest; repeat (default 2000, 4500)")
    parser.add_argument("--aio", action="store_true",
                        help="also run a bare grpc.aio receiver, live and on the replay")
    parser.add_argument("--replay-tasks", type=int, default=100_000)
    parser.add_argument("--replay-rounds", type=int, default=3,
                        help="replay arms alternated this many times; medians reported")
    parser.add_argument("--poll-tasks", type=int, default=100_000)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--render-times", type=int, default=200)
    parser.add_argument("--render-budget", type=float, default=3.0,
                        help="seconds per format at most (at least 15 renders)")
    parser.add_argument("--memory-tasks", type=int, default=200_000)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--load-rate", type=float, default=4500.0)
    parser.add_argument("--load-seconds", type=float, default=20.0)
    for name in ("live", "replay", "facts", "render", "memory", "idle", "load"):
        parser.add_argument(f"--skip-{name}", action="store_true")
    parser.add_argument("--worker", choices=("bare", "bare-aio", "exporter"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--session", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--worker-seconds", type=float, default=600.0, help=argparse.SUPPRESS)
    return parser.parse_args()


SECTIONS = ("live", "replay", "facts", "render", "memory", "idle", "load")
SECTION_OF = {"served": "replay", "facts_poller": "facts", "facts_pages": "facts"}


class Run:
    """Results and table rows (by section, printed in SECTIONS order) gathered so far."""

    def __init__(self) -> None:
        self.results: dict[str, Any] = {"kinds": KINDS, "events_per_task": EVENTS_PER_TASK}
        self.sections: dict[str, list[Row]] = {name: [] for name in SECTIONS}
        self.failed: list[dict[str, Any]] = []

    def add(self, section: str, rows: list[Row]) -> None:
        """Table rows of one section."""
        self.sections[section] += rows

    def record(self, key: str, value: dict[str, Any]) -> dict[str, Any] | None:
        """Keep a measurement; None (and an ERROR row) when it failed."""
        self.results[key] = value
        if "error" in value:
            self.failed.append(value)
            self.add(SECTION_OF.get(key, key), [Row(key, "ERROR", verdict=value["error"])])
            return None
        return value

    def rows(self) -> list[Row]:
        """Every row, section by section."""
        return [row for name in SECTIONS for row in self.sections[name]]


def in_process_part(args: argparse.Namespace, run: Run) -> None:
    """Replay, facts, render and memory, with the idle call count in the background."""
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(max_workers=2) as pool:
        idle_before: Scrape | None = None
        idle_after: Future[Scrape] | None = None
        if not args.skip_idle:
            print("idle: demo simulator at x0.1 and a default exporter, in the background ...",
                  flush=True)
            try:
                idle_url = stack.enter_context(idle_pair())
                wait_for(lambda: first_polls_done(idle_url), 30, "the idle exporter's polls")
                idle_before = scrape(idle_url)
                # The closing scrape is taken on time by a thread, whatever runs meanwhile.
                idle_after = pool.submit(scrape_at, idle_url,
                                         idle_before.at + args.idle_seconds + PASS_SLACK_S)
            except (BenchError, OSError) as error:
                run.record("idle", {"error": " ".join(str(error).split())[:160]})
        server_future = None
        if not args.skip_replay or not args.skip_facts:
            print(f"serving a finished session of {args.replay_tasks:,} tasks ...", flush=True)
            server_future = pool.submit(
                common.start_process,
                [sys.executable, "-m", "bench.serve_finished", "--bag", str(args.replay_tasks)],
                name="serve_finished", ready_prefix=READY, timeout=150)
        # While it plays (one core): a figure that is not a timing, and the pages' set-up.
        if not args.skip_memory:
            print(f"memory: TaskTracker with {args.memory_tasks:,} tasks ...", flush=True)
            memory = run.record("memory", attempt(measure_memory, args.memory_tasks))
            if memory:
                run.add("memory", [
                    Row("memory: bytes per tracked task", memory["bytes_per_task"], "B",
                        TARGET_BYTES_PER_TASK, ratio_verdict(
                            memory["bytes_per_task"], TARGET_BYTES_PER_TASK, False)),
                    Row("memory: of which the id string", memory["id_string_bytes"], "B"),
                    Row("memory: per task once ended", memory["after_end_bytes_per_task"], "B",
                        verdict=f"{memory['ended_ids_still_recognised_of_last_1000']}/1000 "
                                "ids kept"),
                ])
        pages: list[bytes] = []
        if not args.skip_facts:
            print(f"facts: building {args.pages} pages of 1,000 ended tasks ...", flush=True)
            pages = build_pages(args.pages)
        if server_future is not None:
            try:
                server = server_future.result()
            except BenchError as error:
                run.record("served", {"error": " ".join(str(error).split())[:160]})
                server = None
            if server is not None:
                stack.callback(common.stop_process, server)
                info = json.loads(server.ready.removeprefix(READY))
                run.results["served"] = info
                if not args.skip_replay:
                    kinds = ["bare", *(["bare-aio"] if args.aio else []), "exporter"]
                    replay = run.record("replay", attempt(measure_replay, server, info, kinds,
                                                          args.replay_rounds))
                    if replay:
                        run.add("replay", replay_rows(replay))
                if not args.skip_facts:
                    print(f"facts: poll_once over {args.poll_tasks:,} served tasks ...",
                          flush=True)
                    run.record("facts_poller", attempt(measure_poller, server, info,
                                                       args.poll_tasks))
                common.stop_process(server)
        if not args.skip_facts:
            print("facts: parse, convert, aggregate ...", flush=True)
            page_figures = run.record("facts_pages", attempt(measure_pages, pages))
            poller = run.results.get("facts_poller", {"error": ""})
            run.add("facts", facts_rows(page_figures, None if "error" in poller else poller))
        if not args.skip_render:
            print(f"render: /metrics up to {args.render_times}x per format ...", flush=True)
            render = run.record("render", attempt(measure_render, args.render_times,
                                                  args.render_budget))
            if render:
                run.add("render", render_rows(render))
        if idle_before is not None and idle_after is not None:
            if not idle_after.done():
                print("idle: waiting for the end of its window ...", flush=True)
            try:
                after = idle_after.result()
                idle = calls_per_minute(idle_before, after, args.idle_seconds)
                idle["followed_sessions"] = after.total("armonik_observe_followed_sessions")
                idle["partitions"] = len(after.by("armonik_partition_pod_max", "partition"))
                run.results["idle"] = idle
                scope = Row("idle: partitions | followed sessions",
                            f"{idle['partitions']} | {idle['followed_sessions']:g}",
                            verdict="CountTasksByStatus: one per partition, one per session")
                run.add("idle", [*calls_rows("idle", idle), scope])
            except OSError as error:
                run.record("idle", {"error": str(error)[:160]})

def main() -> None:
    args = parse_args()
    if args.worker:  # internal: one receiver, as a child process
        run_worker(args.worker, args.endpoint, args.session, args.count, args.worker_seconds)
        return
    # In-process measures run under the exporter's own process settings (GC thresholds, GIL
    # switch interval), as `serve` does; the bare receivers run in child processes without.
    tune_process()
    started = time.monotonic()
    run = Run()
    run.results["seconds"] = args.seconds
    phases: dict[str, float] = {}
    in_process_part(args, run)
    phases["replay, facts, render, memory, idle"] = round(time.monotonic() - started, 1)
    if not args.skip_live:
        runs = []
        for rate in args.rate or DEFAULT_RATES:
            print(f"live: steady at {rate:g} tasks/s, bare then exporter, "
                  f"{args.seconds:g}s each ...", flush=True)
            result = attempt(measure_live, rate, args.seconds, args.aio)
            if "error" in result:
                run.failed.append(result)
                run.add("live", [Row(f"live @{rate:g}/s", "ERROR", verdict=result["error"])])
            else:
                runs.append(result)
        run.results["live"] = runs
        run.add("live", live_rows(runs))
        phases["live"] = round(time.monotonic() - started - sum(phases.values()), 1)
    if not args.skip_load:
        print(f"load: steady at {args.load_rate:g} tasks/s, default exporter, "
              f"{args.load_seconds:g}s ...", flush=True)
        load = run.record("load", attempt(measure_load, args.load_rate, args.load_seconds))
        if load:
            run.add("load", calls_rows(f"load @{args.load_rate:g}/s", load["calls"])
                    + load_rows(load))
    if not args.skip_load:
        phases["load"] = round(time.monotonic() - started - sum(phases.values()), 1)
    run.results["phase_s"] = phases
    run.results["errors"] = run.failed
    run.results["total_runtime_s"] = round(time.monotonic() - started, 1)
    print()
    print_table({"": run.rows()}, f"exporter benchmark ({run.results['total_runtime_s']}s)")
    print(f"\nwrote {write_results(NAME, run.results)}")
    if run.failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
