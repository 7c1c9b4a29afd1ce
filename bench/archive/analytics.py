"""The query baseline: armonik-analytics 0.0.2 over the same tasks as the archive.

A real simulator (a one-session slice of `large`, `tasks` tasks) plays in its own process,
archives its tasks and serves them; armonik-analytics (the `bench` extra, installed by
`make bench`) computes its StartedToEnded transition over that session in a process of its own,
paging ListTasksDetailed 1,000 at a time and adding up per-page means; then the archive of the
same tasks is queried in a fresh process (bench.archive.query). analytics' time is extrapolated
linearly to the large archive's rows. The slice's percentiles also check the synthetic facts'
shape (bench.archive.facts) against the simulator's.

usage (the children, as the benchmark starts them):
       python -m bench.archive.analytics serve-slice --tasks N --archive DIR
       python -m bench.archive.analytics baseline --endpoint HOST:PORT --session ID
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from armonik_observe.archive.writer import ArchiveSink
from armonik_observe.fact_columns import TaskFacts
from armonik_observe.pipeline import Batch
from bench import common
from bench.archive.facts import MICROS, PAGE_ROWS, fact_from_sim
from bench.archive.query import first_answer_s, group_of, run_query_worker
from bench.common import CpuSampler, fresh_dir
from bench.report import Row, info_row

ANALYTICS_VERSION = "0.0.2"
HOST = "127.0.0.1"
READY = "READY "


def slice_scenario(tasks: int) -> Any:
    """One session of `large`'s default partition, with `tasks` tasks."""
    from armonik_observe.simulator.scenario import scenario_from_dict

    stage = 0.001  # the `large` profile: every stage but processing takes 1 ms

    return scenario_from_dict({
        "name": f"large-slice-{tasks}",
        "partitions": [{"id": "default", "pods": 1000, "slots": 10}],
        "sessions": [{"name": "large", "partition": "default",
                      "graph": {"kind": "bag", "tasks": tasks, "batch": min(5000, tasks)},
                      "profile": {"creation": stage, "queue": stage, "acquisition": stage,
                                  "fetch": stage, "finalize": stage, "error_rate": 0.01,
                                  "processing": {"kind": "lognormal", "mean": 2, "spread": 1}}}],
    }, "large slice")


async def serve_slice(tasks: int, directory: Path) -> None:
    """Play a `large` slice to its end, archive its tasks, print READY, serve until SIGTERM."""
    from armonik_observe.simulator.clock import ManualClock
    from armonik_observe.simulator.server import Simulator
    from armonik_observe.supervisor import wait_for_shutdown

    clock = ManualClock(start_us=int(time.time() * MICROS))
    simulator = Simulator(slice_scenario(tasks), listen=f"{HOST}:0", clock=clock,
                          record_events=False)
    started = time.perf_counter()
    await simulator.start()
    try:
        await simulator.run_until_idle()
        play = time.perf_counter() - started
        cache: dict[int, tuple[tuple[str, str], ...]] = {}
        facts = [fact_from_sim(task, cache) for task in simulator.true_tasks()]
        sink = ArchiveSink(directory, max_buffer_rows=len(facts) + 1)
        sink.consume(Batch(facts=TaskFacts.of(facts)))
        await sink.stop()
        ready = {"port": simulator.port, "sessions": list(simulator.workload.session_ids),
                 "tasks": len(facts), "play_s": round(play, 3)}
        print(READY + json.dumps(ready), flush=True)
        await wait_for_shutdown(None)
    finally:
        await simulator.stop(grace=0)


def analytics_worker(endpoint: str, session: str) -> dict[str, Any]:
    """armonik-analytics' StartedToEnded transition over one session, timed (own process)."""
    import grpc
    from armonik.common import Task
    from armonik_analytics import ArmoniKStatistics
    from armonik_analytics.metrics import TimestampsTransition
    from armonik_analytics.utils import TaskTimestamps

    transition = TimestampsTransition(TaskTimestamps.STARTED, TaskTimestamps.ENDED)
    with grpc.insecure_channel(endpoint) as channel:
        stats = ArmoniKStatistics(channel, Task.session_id == session, [transition])
        cpu0, wall0 = time.process_time(), time.perf_counter()
        stats.compute()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    values = {key: float(value) if value is not None else None
              for key, value in transition.values.items()}
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "values": values,
            "metric": transition.name}


def analytics_installed() -> bool:
    """Whether armonik-analytics (the `bench` extra) is importable here."""
    return importlib.util.find_spec("armonik_analytics") is not None


def measure_analytics(tasks: int, root: Path) -> dict[str, Any]:
    """The analytics baseline and the archive query over the same served tasks."""
    if not analytics_installed():
        return {"error": f"armonik-analytics=={ANALYTICS_VERSION} is not installed (the bench "
                         "extra: `make bench` installs it); baseline skipped"}
    directory = fresh_dir(root, "slice")
    cmd = [sys.executable, "-m", "bench.archive.analytics", "serve-slice",
           "--tasks", str(tasks), "--archive", str(directory)]
    print(f"analytics: simulator plays a {tasks:,}-task slice of `large` ...", flush=True)
    with common.running(cmd, name="serve-slice", ready_prefix=READY, timeout=240) as server:
        info = json.loads(server.ready.removeprefix(READY))
        print("analytics: armonik-analytics pages the session ...", flush=True)
        worker = [sys.executable, "-m", "bench.archive.analytics", "baseline",
                  "--endpoint", f"{HOST}:{info['port']}", "--session", info["sessions"][0]]
        with CpuSampler(server.pid) as sampler:
            report, exited = common.run_json(worker, timeout=600)
        server_cpu = sampler.cpu_between(exited - report["wall_s"], exited)
    archive = run_query_worker(directory)
    return {"server": info, "analytics": {**report,
            "server_cpu_s": round(server_cpu, 3),
            "pages": math.ceil(info["tasks"] / PAGE_ROWS),
            "tasks_per_s": round(info["tasks"] / report["wall_s"], 1)},
            "archive_query": archive}


def analytics_rows(result: dict[str, Any], large: dict[str, Any] | None) -> list[Row]:
    """Rows comparing armonik-analytics with the archive over the same tasks."""
    a, q, info = result["analytics"], result["archive_query"], result["server"]
    archive_first = first_answer_s(q)
    true_mean, reported = q["mean"]["avg_s"], a["values"]["avg"] or 0.0
    rows = [
        info_row("baseline: tasks served (simulator slice)", info["tasks"],
                 means="tasks of the one-session slice of `large` the simulator played",
                 note=f"played in {info['play_s']:.1f}s"),
        info_row("baseline: armonik-analytics StartedToEnded", a["wall_s"], "s",
                 means="armonik-analytics computing one transition over the served session",
                 note=f"{a['tasks_per_s']:,.0f} tasks/s; CPU client {a['cpu_s']:.1f}s, "
                      f"server {a['server_cpu_s']:.1f}s, {a['pages']} pages"),
        Row("baseline: archive open+connect+percentiles", archive_first, "s", a["wall_s"],
            f"x{a['wall_s'] / max(archive_first, 1e-9):.0f} faster",
            "the archive's first answer over the same tasks, fresh process; target: "
            "analytics' time"),
        Row("baseline: analytics 'avg' vs true mean", reported, "s", true_mean,
            f"x{reported / max(true_mean, 1e-9):.1f}",
            "analytics' reported mean processing time; target: the true mean (archive)",
            "analytics sums per-page means"),
    ]
    if large:
        rows += _large_rows(large, q, a)
    return rows


def _large_rows(large: dict[str, Any], q: dict[str, Any], a: dict[str, Any]) -> list[Row]:
    rows = []
    synthetic, played = group_of(large, "default"), group_of(q, "default")
    if synthetic and played:
        rows.append(info_row("shape: default COMPLETED p50|p95|p99, synthetic",
                             " | ".join(f"{v:.2f}" for v in synthetic[3:]), "s",
                             means="the synthetic archive's processing-time percentiles, to "
                                   "check against the simulator slice's",
                             note="simulator slice: "
                                  + " | ".join(f"{v:.2f}" for v in played[3:])))
    extrapolated = large["raw_rows"] / a["tasks_per_s"]
    large_first = first_answer_s(large)
    rows.append(Row(f"baseline: analytics over {large['raw_rows'] / 1e6:.1f}M tasks",
                    extrapolated, "s", large_first,
                    f"x{extrapolated / max(large_first, 1e-9):.0f} the archive",
                    "analytics' time extrapolated to the large archive's rows; target: the "
                    "archive's first answer over them"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve-slice", help="play, archive and serve a `large` slice")
    serve.add_argument("--tasks", type=int, required=True)
    serve.add_argument("--archive", type=Path, required=True)
    baseline = commands.add_parser("baseline", help="time armonik-analytics over a session")
    baseline.add_argument("--endpoint", required=True)
    baseline.add_argument("--session", required=True)
    args = parser.parse_args()
    if args.command == "serve-slice":
        asyncio.run(serve_slice(args.tasks, args.archive))
    else:
        print(json.dumps(analytics_worker(args.endpoint, args.session)), flush=True)


if __name__ == "__main__":
    main()
