"""Benchmark the simulator's two hot read paths: one GetEvents stream, and ListTasks paging.

1. Ceilings (bench.simulator.ceiling): a bare Python gRPC server (grpc.aio, then the thread-pool
   server) streams prebuilt events of the same sizes as fast as it can, to the same receiver:
   what any Python server delivers on one stream on this machine, the yardstick for the
   simulator.
2. Stream (bench.simulator.stream): `armonik-observe simulate --scenario steady --rate R` runs
   as its own process; the project's bare grpcio receiver (bench.bare_receive) reads the
   session's GetEvents stream for `--seconds`. Reported per rate: offered, generated and
   delivered events/s, both processes' CPU share and what limits. Target: a bare Python client
   takes ~25k messages/s; the simulator must not be the bottleneck.
3. ListTasks (bench.simulator.list_tasks): `bench.serve_finished` plays a scenario to its end in
   its own process; this process pages through a session's tasks, 1,000 per page, sorted on
   CREATED_AT then on TASK_ID, and reports task summaries/s, ms per page and the server's CPU
   per page.

usage: python -m bench.bench_simulator [--seconds 6] [--rate R ...] [--list-tasks 50000]
       [--skip-baseline] [--skip-stream] [--skip-list] [--quick]
Writes bench/results/simulator.json. Takes under a minute with the defaults, 10 s with --quick.
"""

from __future__ import annotations

import argparse

from bench.report import Run, parse_args
from bench.simulator.ceiling import KINDS, ceiling_rows, measure_ceiling
from bench.simulator.list_tasks import list_rows, measure_list_tasks
from bench.simulator.stream import EVENTS_PER_TASK, TARGET_EVENTS_PER_S, measure_stream, stream_rows

NAME = "simulator"
DEFAULT_RATES = (1000.0, 3000.0, 4500.0)
QUICK_RATES = (3000.0,)
QUICK = {"seconds": 2.0, "list_tasks": 10_000}


def options() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0,
                        help="how long the receiver reads each stream (default 6)")
    parser.add_argument("--rate", type=float, action="append",
                        help="tasks/s of the steady scenario; repeat for several "
                             f"(default {', '.join(f'{r:g}' for r in DEFAULT_RATES)}; "
                             f"--quick {', '.join(f'{r:g}' for r in QUICK_RATES)})")
    parser.add_argument("--list-tasks", type=int, default=50_000,
                        help="tasks of the one finished session paged by ListTasks "
                             "(0: the burst scenario instead; default 50000)")
    parser.add_argument("--skip-baseline", action="store_true",
                        help="skip the bare-server ceilings")
    parser.add_argument("--skip-stream", action="store_true")
    parser.add_argument("--skip-list", action="store_true")
    return parse_args(parser, QUICK)


def main() -> None:
    args = options()
    run = Run(NAME, "simulator benchmark", ("ceiling", "stream", "list tasks"))
    run.results.update({"seconds": args.seconds, "events_per_task": EVENTS_PER_TASK,
                        "target_events_per_s": TARGET_EVENTS_PER_S})
    ceilings = []
    if not args.skip_baseline:
        for kind in KINDS:
            print(f"ceiling: bare grpc {kind} server for {args.seconds:g}s ...", flush=True)
            ceiling = run.attempt(f"ceiling {kind}", measure_ceiling, kind, args.seconds,
                                  section="ceiling", keep=False)
            if ceiling:
                ceilings.append(ceiling)
        run.results["baseline"] = ceilings
        run.add("ceiling", ceiling_rows(ceilings))
        run.phase("ceiling")
    if not args.skip_stream:
        runs = []
        for rate in args.rate or (QUICK_RATES if args.quick else DEFAULT_RATES):
            print(f"stream: steady at {rate:g} tasks/s for {args.seconds:g}s ...", flush=True)
            stream = run.attempt(f"stream @{rate:g}/s", measure_stream, rate, args.seconds,
                                 section="stream", keep=False)
            if stream:
                runs.append(stream)
        run.results["stream"] = runs
        if runs:
            aio = next((c for c in ceilings if "aio" in c["server"]), None)
            run.add("stream", stream_rows(runs, aio))
        run.phase("stream")
    if not args.skip_list:
        what = f"a bag of {args.list_tasks} tasks" if args.list_tasks else "the burst scenario"
        print(f"list tasks: paging through {what} ...", flush=True)
        listed = run.attempt("list_tasks", measure_list_tasks, args.list_tasks, "burst",
                             section="list tasks")
        if listed:
            run.add("list tasks", list_rows(listed))
        run.phase("list tasks")
    run.finish()


if __name__ == "__main__":
    main()
