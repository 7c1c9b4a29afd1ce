"""Benchmark the exporter: event ingest against a bare receiver, task facts, /metrics, memory, RPCs.

One module of bench/exporter/ per measurement (each docstring says how it measures):

1. Ingest, live (ingest_live): on a steady simulator at each `--rate`, the bare grpcio receiver
   (bench.bare_receive), with --aio a bare grpc.aio loop, then `serve` following the session,
   each for `--seconds`: events/s and events per CPU-second, exporter/bare ratios.
   Ingest, replay (ingest_replay): a finished session of `--replay-tasks` tasks replays one
   NEW_TASK per task on subscription; the bare loop (and with --aio the aio one) and the
   exporter's EventStreams and pipeline receive all of it, alternated `--replay-rounds` times.
2. Task facts (facts): `--pages` prebuilt ListTasks pages parsed, converted and folded, end to
   end and per stage; then TaskFactsPoller.poll_once() over `--poll-tasks` served tasks.
3. /metrics (render): a sink filled to ~10k series rendered as text, OpenMetrics and gzipped
   text, `--render-times` times or `--render-budget` seconds per format.
4. Memory (memory): a TaskTracker holding `--memory-tasks` in-flight tasks, then ended.
5. Control-plane calls per minute (calls), idle: a demo simulator at x0.1 and a default
   exporter over `--idle-seconds`, in the background while 1b to 4 run (it needs only wall
   time).
6. The busiest session (load): a default exporter on a steady simulator at `--load-rate` over
   `--load-seconds`: calls per minute under load, events received against generated, backlog,
   tasks tracked, event lag, tasks_ended_total growth.

usage: python -m bench.bench_exporter [--seconds 5] [--rate R ...] [--aio] [--quick]
       [--skip-live] [--skip-replay] [--skip-facts] [--skip-render] [--skip-memory]
       [--skip-idle] [--skip-load]
Writes bench/results/exporter.json. Takes 2 to 2.5 minutes with the defaults (3 on a machine
busy with other work; --aio adds half a minute), about 35 s with --quick. "other processes'
CPU" rows and "others" in the notes say how many cores other processes took meanwhile: above
0.2, read ratios, not rates.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from armonik_observe.runner import tune_process
from bench import common
from bench.common import BenchError, Child, wait_for
from bench.exporter.calls import PASS_SLACK_S, calls_per_minute, idle_pair, idle_rows
from bench.exporter.facts import build_pages, facts_rows, measure_pages, measure_poller
from bench.exporter.harness import (
    EVENTS_PER_TASK,
    KINDS,
    Scrape,
    first_polls_done,
    scrape,
    scrape_at,
)
from bench.exporter.ingest_live import live_rows, measure_live
from bench.exporter.ingest_replay import measure_replay, replay_rows
from bench.exporter.load import load_rows, measure_load
from bench.exporter.memory import measure_memory, memory_rows
from bench.exporter.render import measure_render, render_rows
from bench.report import Run, parse_args, short
from bench.serve_finished import READY

NAME = "exporter"
DEFAULT_RATES = (2000.0, 4500.0)
QUICK_RATES = (2000.0,)
SECTIONS = ("live", "replay", "facts", "render", "memory", "idle", "load")
QUICK = {"seconds": 2.0, "replay_tasks": 20_000, "replay_rounds": 1, "poll_tasks": 20_000,
         "pages": 10, "render_times": 30, "render_budget": 0.5, "memory_tasks": 50_000,
         "idle_seconds": 10.0, "load_seconds": 8.0}


def options() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="window of each live ingest arm (default 5)")
    parser.add_argument("--rate", type=float, action="append",
                        help="steady tasks/s for live ingest; repeat (default 2000, 4500; "
                             "--quick 2000)")
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
    for name in SECTIONS:
        parser.add_argument(f"--skip-{name}", action="store_true")
    return parse_args(parser, QUICK)


@dataclass
class Idle:
    """The idle pair running in the background: the opening scrape, the closing one to come."""

    before: Scrape
    after: Future[Scrape]


def start_idle(args: argparse.Namespace, run: Run, stack: contextlib.ExitStack,
               pool: ThreadPoolExecutor) -> Idle | None:
    """Start the idle pair; its closing scrape is taken on time by a thread, whatever runs."""
    print("idle: demo simulator at x0.1 and a default exporter, in the background ...",
          flush=True)
    try:
        url = stack.enter_context(idle_pair())
        wait_for(lambda: first_polls_done(url), 30, "the idle exporter's polls")
        before = scrape(url)
    except (BenchError, OSError) as error:
        run.fail("idle", short(error, 160), "idle")
        return None
    return Idle(before, pool.submit(scrape_at, url, before.at + args.idle_seconds + PASS_SLACK_S))


def finish_idle(args: argparse.Namespace, run: Run, idle: Idle) -> None:
    """Calls per minute of the idle pair, once its window has closed."""
    if not idle.after.done():
        print("idle: waiting for the end of its window ...", flush=True)
    try:
        after = idle.after.result()
    except OSError as error:
        run.fail("idle", short(error, 160), "idle")
        return
    figures = calls_per_minute(idle.before, after, args.idle_seconds)
    figures["followed_sessions"] = after.total("armonik_observe_followed_sessions")
    figures["partitions"] = len(after.by("armonik_partition_pod_max", "partition"))
    run.results["idle"] = figures
    run.add("idle", idle_rows(figures))


def served_part(args: argparse.Namespace, run: Run, server: Child) -> None:
    """Replay and poll_once over the finished session `server` serves."""
    info = json.loads(server.ready.removeprefix(READY))
    run.results["served"] = info
    if not args.skip_replay:
        kinds = ["bare", *(["bare-aio"] if args.aio else []), "exporter"]
        replay = run.attempt("replay", measure_replay, server, info, kinds, args.replay_rounds,
                             section="replay")
        if replay:
            run.add("replay", replay_rows(replay))
    if not args.skip_facts:
        print(f"facts: poll_once over {args.poll_tasks:,} served tasks ...", flush=True)
        run.attempt("facts_poller", measure_poller, server, info, args.poll_tasks,
                    section="facts")


def in_process_part(args: argparse.Namespace, run: Run) -> None:
    """Replay, facts, render and memory, with the idle call count in the background."""
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(max_workers=2) as pool:
        idle = None if args.skip_idle else start_idle(args, run, stack, pool)
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
            memory = run.attempt("memory", measure_memory, args.memory_tasks, section="memory")
            if memory:
                run.add("memory", memory_rows(memory))
        pages = []
        if not args.skip_facts:
            print(f"facts: building {args.pages} pages of 1,000 ended tasks ...", flush=True)
            pages = build_pages(args.pages)
        if server_future is not None:
            server = run.attempt("served", server_future.result, section="replay", keep=False)
            if server is not None:
                stack.callback(common.stop_process, server)
                served_part(args, run, server)
                common.stop_process(server)
        if not args.skip_facts:
            print("facts: parse, convert, aggregate ...", flush=True)
            page_figures = run.attempt("facts_pages", measure_pages, pages, section="facts")
            poller = run.results.get("facts_poller", {"error": ""})
            run.add("facts", facts_rows(page_figures, None if "error" in poller else poller))
        if not args.skip_render:
            print(f"render: /metrics up to {args.render_times}x per format ...", flush=True)
            render = run.attempt("render", measure_render, args.render_times,
                                 args.render_budget, section="render")
            if render:
                run.add("render", render_rows(render))
        if idle is not None:
            finish_idle(args, run, idle)


def live_part(args: argparse.Namespace, run: Run) -> None:
    """Live ingest at each rate, one simulator per rate."""
    runs = []
    for rate in args.rate or (QUICK_RATES if args.quick else DEFAULT_RATES):
        print(f"live: steady at {rate:g} tasks/s, bare then exporter, "
              f"{args.seconds:g}s each ...", flush=True)
        result = run.attempt(f"live @{rate:g}/s", measure_live, rate, args.seconds, args.aio,
                             section="live", keep=False)
        if result:
            runs.append(result)
    run.results["live"] = runs
    run.add("live", live_rows(runs))


def main() -> None:
    args = options()
    # In-process measures run under the exporter's own process settings (GC thresholds, GIL
    # switch interval), as `serve` does; the bare receivers run in child processes without.
    tune_process()
    run = Run(NAME, "exporter benchmark", SECTIONS)
    run.results.update({"kinds": KINDS, "events_per_task": EVENTS_PER_TASK,
                        "seconds": args.seconds})
    in_process_part(args, run)
    run.phase("replay, facts, render, memory, idle")
    if not args.skip_live:
        live_part(args, run)
        run.phase("live")
    if not args.skip_load:
        print(f"load: steady at {args.load_rate:g} tasks/s, default exporter, "
              f"{args.load_seconds:g}s ...", flush=True)
        load = run.attempt("load", measure_load, args.load_rate, args.load_seconds,
                           section="load")
        if load:
            run.add("load", load_rows(load))
        run.phase("load")
    run.finish()


if __name__ == "__main__":
    main()
