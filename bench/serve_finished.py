"""Serve a simulator whose scenario has already played to the end: every task is finished.

Time is a `ManualClock`, so the scenario plays as fast as the CPU allows; once nothing is left to
run, the server keeps serving that frozen state (for list benchmarks) until SIGTERM or Ctrl-C.

usage: python -m bench.serve_finished [--listen 127.0.0.1:0] [--scenario burst | --bag N]
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


async def serve(scenario: Scenario, listen: str, seed: int | None) -> None:
    """Play the scenario to its end, announce READY, then serve until told to stop."""
    clock = ManualClock(start_us=int(time.time() * MICROS))
    simulator = Simulator(scenario, listen=listen, clock=clock, seed=seed, record_events=False)
    started = time.perf_counter()
    await simulator.start()
    try:
        await simulator.run_until_idle()
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
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    scenario = bag_scenario(args.bag) if args.bag else builtin_scenario(args.scenario)
    asyncio.run(serve(scenario, args.listen, args.seed))


if __name__ == "__main__":
    main()
