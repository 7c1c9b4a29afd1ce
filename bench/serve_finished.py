"""Serve a simulator whose scenario has already played to the end: every task is finished.

Time is a `ManualClock`, so the scenario plays as fast as the CPU allows; once nothing is left to
run, the server keeps serving that frozen state (for list benchmarks) until SIGTERM or Ctrl-C.

usage: python -m bench.serve_finished [--listen 127.0.0.1:0] [--scenario burst | --bag N |
       --history N]
Prints one line `READY {json}` (port, endpoint, session ids, task count, play seconds) when ready.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from armonik_observe.simulator.builtin import builtin_scenario
from armonik_observe.simulator.clock import MICROS, ManualClock
from armonik_observe.simulator.scenario import Scenario, scenario_from_dict
from armonik_observe.simulator.server import Simulator
from armonik_observe.supervisor import wait_for_shutdown

READY = "READY "
_FAST = {"processing": {"kind": "constant", "mean": 0.01}, "creation": 0.001, "queue": 0.001,
         "acquisition": 0.001, "fetch": 0.001, "finalize": 0.001}


def bag_scenario(tasks: int, batch: int = 1000) -> Scenario:
    """One session of `tasks` independent, quick, always successful tasks."""
    return scenario_from_dict(
        {
            "name": f"bag-{tasks}",
            "partitions": [{"id": "default", "pods": 100, "slots": 10}],
            "sessions": [{"name": "bag", "partition": "default",
                          "graph": {"kind": "bag", "tasks": tasks, "batch": min(batch, tasks)},
                          "profile": _FAST}],
        },
        f"bag of {tasks} tasks",
    )


HISTORY_EVERY_S = 0.01  # seconds between two historical sessions
LIVE_SESSIONS = 3


def history_scenario(sessions: int) -> Scenario:
    """`sessions` closed one-task sessions, then LIVE_SESSIONS that keep running (long tasks)."""
    return scenario_from_dict(
        {
            "name": f"history-{sessions}",
            "partitions": [{"id": "default", "pods": 100, "slots": 10}],
            "sessions": [
                {"name": "old", "partition": "default", "count": sessions,
                 "every": HISTORY_EVERY_S, "graph": {"kind": "bag", "tasks": 1},
                 "profile": _FAST},
                {"name": "live", "partition": "default", "count": LIVE_SESSIONS,
                 "start": sessions * HISTORY_EVERY_S, "close_when_done": False,
                 "graph": {"kind": "bag", "tasks": 2}, "profile": {"processing": 1e9}},
            ],
        },
        f"{sessions} sessions of history",
    )


def play_seconds(scenario: Scenario) -> float | None:
    """How much simulated time a history scenario needs (None: play to the end)."""
    if not scenario.name.startswith("history-"):
        return None
    return float(scenario.name.removeprefix("history-")) * HISTORY_EVERY_S + 60.0


async def serve(scenario: Scenario, listen: str, seed: int | None) -> None:
    """Play the scenario to its end, announce READY, then serve until told to stop.

    A history scenario plays its history only (its live sessions never end), an hour and
    its own length in the past, so the history is old news to an exporter started now.
    """
    span = play_seconds(scenario)
    now_us = int(time.time() * MICROS)
    start_us = now_us if span is None else now_us - int((span + 3600) * MICROS)
    clock = ManualClock(start_us=start_us)
    simulator = Simulator(scenario, listen=listen, clock=clock, seed=seed, record_events=False)
    started = time.perf_counter()
    await simulator.start()
    try:
        await simulator.run_until_idle(*(() if span is None else (span,)))
        ready: dict[str, Any] = {
            "port": simulator.port,
            "endpoint": simulator.endpoint,
            "scenario": scenario.name,
            "sessions": list(simulator.workload.session_ids),
            "tasks": len(simulator.plane.tasks),
            "results": len(simulator.plane.results),
            "play_s": round(time.perf_counter() - started, 3),
        }
        print(READY + json.dumps(ready), flush=True)
        await wait_for_shutdown(None)
    finally:
        await simulator.stop(grace=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--scenario", default="burst", help="a built-in scenario name")
    parser.add_argument("--bag", type=int, default=0, help="instead: one session of N tasks")
    parser.add_argument("--history", type=int, default=0,
                        help="instead: N closed one-task sessions, then 3 running ones")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    if args.history:
        scenario = history_scenario(args.history)
    else:
        scenario = bag_scenario(args.bag) if args.bag else builtin_scenario(args.scenario)
    asyncio.run(serve(scenario, args.listen, args.seed))


if __name__ == "__main__":
    main()
