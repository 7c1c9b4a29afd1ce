"""The built-in scenarios, written as the same plain data a scenario file holds."""

from __future__ import annotations

from typing import Any

from armonik_observe.simulator.scenario import Scenario, ScenarioError, scenario_from_dict

_FAST = {"processing": {"kind": "constant", "mean": 0.01}, "creation": 0.001, "queue": 0.001,
         "acquisition": 0.001, "fetch": 0.001, "finalize": 0.001}


def _demo() -> dict[str, Any]:
    """A never-ending, lively workload at x1: every group repeats for ever (`count` None).

    Sessions arrive and close, the slow `risk-batch` partition queues up and drains, a pricing
    pod is lost now and then (its task stuck in PROCESSING until the plane notices), tasks fail,
    retry, time out and are cancelled, workers submit subtasks, sessions are paused,
    cancelled, purged and deleted, a long-lived
    session streams tasks and a burst floods the default partition every five minutes. What
    arrives is less than the pods can run, so with the simulator's TTL the state stays bounded.
    """
    pricing = {"processing": {"kind": "lognormal", "mean": 0.8, "spread": 0.6},
               "acquisition": {"kind": "exponential", "mean": 0.02},
               "error_rate": 0.05, "timeout_rate": 0.004, "cancel_rate": 0.002,
               "lost_rate": 0.004}
    risk = {"processing": {"kind": "lognormal", "mean": 2.5, "spread": 0.5},
            "fetch": {"kind": "uniform", "mean": 0.05, "spread": 0.04}, "error_rate": 0.02}
    short = {"processing": {"kind": "exponential", "mean": 0.3}, "error_rate": 0.01}
    forever = {"count": None}
    return {
        "name": "demo",
        "seed": 7,
        "partitions": [
            {"id": "default", "pods": 4, "pod_max": 8, "priority": 1},
            {"id": "pricing", "pods": 6, "slots": 2, "pod_max": 12, "priority": 2},
            {"id": "risk-batch", "pods": 3, "pod_max": 6, "priority": 1, "preemption": 20},
        ],
        "sessions": [
            {"name": "pricing", "partition": "pricing", **forever, "every": 20, "deadline": 45,
             "graph": {"kind": "bag", "tasks": 150}, "max_duration": 8, "max_retries": 1,
             "application": {"name": "pricing", "version": "2.3.1"}, "profile": pricing},
            {"name": "risk", "partition": "risk-batch", **forever, "start": 3, "every": 75,
             "graph": {"kind": "fanout", "tasks": 60}, "max_duration": 30, "deadline": 90,
             "application": {"name": "risk", "version": "1.4.0"}, "profile": risk},
            {"name": "chain", "partition": "default", **forever, "start": 5, "every": 40,
             "graph": {"kind": "chain", "tasks": 20}, "profile": short},
            {"name": "dag", "partition": "default", **forever, "start": 8, "every": 60,
             "graph": {"kind": "subtasking", "tasks": 8, "depth": 2, "children": 3},
             "profile": {"processing": 0.5, "error_rate": 0.03}},
            {"name": "paused", "partition": "default", **forever, "start": 12, "every": 120,
             "graph": {"kind": "bag", "tasks": 150}, "profile": {"processing": 0.3},
             "lifecycle": [{"action": "pause", "at": 3}, {"action": "resume", "at": 20}]},
            {"name": "cancelled", "partition": "default", **forever, "start": 30, "every": 180,
             "close_when_done": False, "graph": {"kind": "bag", "tasks": 200},
             "profile": {"processing": 1.0},
             "lifecycle": [{"action": "cancel", "at": 15}, {"action": "purge", "at": 30},
                           {"action": "delete", "at": 45}]},
            {"name": "burst", "partition": "default", **forever, "start": 90, "every": 300,
             "graph": {"kind": "bag", "tasks": 600}, "profile": short},
            {"name": "stream", "partition": "pricing", "close_when_done": False,
             "graph": {"kind": "stream", "rate": 2, "batch": 4}, "max_duration": 8,
             "max_retries": 1,
             "application": {"name": "pricing", "version": "2.3.1"}, "profile": pricing},
        ],
    }


def _steady() -> dict[str, Any]:
    return {
        "name": "steady",
        "partitions": [{"id": "default", "pods": 500, "slots": 8}],
        "sessions": [{"name": "steady", "partition": "default", "close_when_done": False,
                      "graph": {"kind": "stream", "rate": 1000, "batch": 50}, "profile": _FAST}],
    }


def _burst() -> dict[str, Any]:
    return {
        "name": "burst",
        "partitions": [{"id": "default", "pods": 20, "slots": 2}],
        "sessions": [{"name": "burst", "partition": "default", "count": 4, "every": 60,
                      "graph": {"kind": "bag", "tasks": 3000},
                      "profile": {"processing": {"kind": "exponential", "mean": 0.3}}}],
    }


def _dag() -> dict[str, Any]:
    subtasks = {"processing": {"kind": "uniform", "mean": 0.4, "spread": 0.3},
                "subtask_depth": 4, "subtask_children": 3, "error_rate": 0.02}
    return {
        "name": "dag",
        "partitions": [{"id": "default", "pods": 16, "slots": 2}],
        "sessions": [
            {"name": "subtasks", "partition": "default",
             "graph": {"kind": "subtasking", "tasks": 5}, "profile": subtasks},
            {"name": "fanout", "partition": "default", "graph": {"kind": "fanout", "tasks": 200}},
            {"name": "chain", "partition": "default", "graph": {"kind": "chain", "tasks": 50}},
        ],
    }


def _large() -> dict[str, Any]:
    return {
        "name": "large",
        "partitions": [{"id": "default", "pods": 1000, "slots": 10},
                       {"id": "gpu", "pods": 200, "slots": 10}],
        "sessions": [
            {"name": "large", "partition": "default", "count": 8, "every": 30,
             "graph": {"kind": "bag", "tasks": 100_000, "batch": 5000},
             "profile": {**_FAST, "processing": {"kind": "lognormal", "mean": 2, "spread": 1},
                         "error_rate": 0.01}},
            {"name": "large-gpu", "partition": "gpu", "count": 2, "every": 60,
             "graph": {"kind": "bag", "tasks": 100_000, "batch": 5000},
             "profile": {**_FAST, "processing": {"kind": "exponential", "mean": 5}}},
        ],
    }


BUILTIN = {"demo": _demo, "steady": _steady, "burst": _burst, "dag": _dag, "large": _large}


def builtin_scenario(name: str) -> Scenario:
    """Return a built-in scenario by name."""
    factory = BUILTIN.get(name)
    if factory is None:
        raise ScenarioError(
            f"unknown scenario {name!r}: use one of {', '.join(BUILTIN)} or a .yaml/.toml file"
        )
    return scenario_from_dict(factory(), f"built-in scenario {name}")
