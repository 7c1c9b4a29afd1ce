"""Ground truth for the analytics tests: a simulator's own records archived as they are, and each
answer recomputed from those records with numpy or plain Python, never with the code under test.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from armonik_observe.archive.writer import ArchiveSink
from armonik_observe.fact_columns import TaskFacts
from armonik_observe.model import ResultRecord, TaskFact
from armonik_observe.pipeline import Batch
from armonik_observe.simulator.records import SimResult, SimTask
from armonik_observe.simulator.scenario import scenario_from_dict
from armonik_observe.simulator.server import Simulator

# Each measure as (start, end) attributes of a SimTask: what docs/analytics.md defines.
MEASURE_ENDS = {
    "creation_to_end": ("created_at", "ended_at"),
    "processing_to_end": ("started_at", "ended_at"),
    "received_to_end": ("received_at", "ended_at"),
    "queue_wait": ("submitted_at", "received_at"),
    "acquisition": ("received_at", "acquired_at"),
    "fetch": ("acquired_at", "fetched_at"),
    "processing": ("started_at", "processed_at"),
    "finalize": ("processed_at", "ended_at"),
}
# Tolerances of the issue: exact counts, min and max; 1e-12 relative for percentiles (numpy's
# linear interpolation); 1e-9 for means and standard deviations.
RELATIVE = {"count": 0.0, "min": 0.0, "max": 0.0, "p50": 1e-12, "p90": 1e-12, "p95": 1e-12,
            "p99": 1e-12, "mean": 1e-9, "std": 1e-9}


def fact_of(task: SimTask) -> TaskFact:
    """The archived record of a simulator task, field for field."""
    options = task.options
    limit = int(options.max_duration.seconds) * 1_000_000 + options.max_duration.nanos // 1000
    return TaskFact(
        task.task_id, task.session_id, task.status.name, options.partition_id,
        options.application_name, options.application_version, task.created_at,
        task.submitted_at, task.received_at, task.acquired_at, task.fetched_at, task.started_at,
        task.processed_at, task.ended_at, task.creation_to_end, task.processing_to_end,
        task.received_to_end, task.pod_hostname, task.owner_pod_id, task.initial_task_id,
        task.payload_id, task.created_by, task.status_message, task.output_error, limit or None,
        options.max_retries, options.priority, tuple(sorted(options.options.items())),
        tuple(task.retry_of_ids), tuple(task.parent_task_ids), tuple(task.data_dependencies),
        tuple(task.expected_output_ids))


def result_of(result: SimResult) -> ResultRecord:
    """The archived record of a simulator result."""
    return ResultRecord(result.session_id, result.result_id, result.name, result.owner_task_id,
                        result.status.name, result.created_at, result.completed_at, result.size,
                        result.created_by, result.opaque_id.hex(), result.manual_deletion)


def ended(sim: Simulator) -> list[SimTask]:
    """The tasks that ended: what the exporter archives."""
    return [task for task in sim.true_tasks() if task.ended_at is not None]


async def archive_truth(sim: Simulator, directory: Path, *, results: bool = True) -> None:
    """Archive the simulator's ended tasks (and its results) as the exporter would."""
    # A generous stop bound: the archive's lowest-priority threads are slow on a busy machine,
    # and rows a stop gave up on would turn into a confusing mismatch later.
    sink = ArchiveSink(directory, flush_interval=3600, stop_timeout=300)
    await sink.start()
    sink.consume(Batch(facts=TaskFacts.of([fact_of(task) for task in ended(sim)])))
    if results:
        sink.consume(Batch(results=[result_of(r) for r in sim.plane.results.values()]))
    await sink.stop()
    assert sink.stats.buffered_rows == 0, "stop timed out with rows unwritten"


def values(tasks: Iterable[SimTask], measure: str) -> np.ndarray:
    """A measure of every task that has both of its ends, in seconds."""
    start, end = MEASURE_ENDS[measure]
    spans = [getattr(t, end) - getattr(t, start) for t in tasks
             if getattr(t, start) is not None and getattr(t, end) is not None]
    return np.array(spans, dtype=np.int64) / 1_000_000


def stats(seconds: np.ndarray) -> dict[str, Any]:
    """count, mean, std (n - 1), min, p50, p90, p95, p99, max with numpy's defaults."""
    return {"count": len(seconds), "mean": float(np.mean(seconds)),
            "std": float(np.std(seconds, ddof=1)) if len(seconds) > 1 else None,
            "min": float(np.min(seconds)), "max": float(np.max(seconds)),
            **{f"p{q}": float(np.percentile(seconds, q)) for q in (50, 90, 95, 99)}}


def assert_stats_equal(got: dict[str, Any], want: dict[str, Any], where: object) -> None:
    """Each statistic within the issue's tolerance, relative to the statistic; a standard
    deviation of equal values is 0 exactly, where numpy's rounding leaves ~1e-19, so it is also
    allowed rounding noise relative to the values' size."""
    scale = max(abs(want["min"]), abs(want["max"]))
    for name, tolerance in RELATIVE.items():
        value, truth = got[name], want[name]
        if truth is None:
            assert value is None, (where, name, value)
            continue
        assert value is not None, (where, name)
        noise = 1e-15 * scale if name == "std" else 0.0
        assert abs(value - truth) <= max(tolerance * abs(truth), noise), (where, name, value,
                                                                         truth)


def grouped(tasks: Iterable[SimTask], key: Callable[[SimTask], Any]) -> dict[Any, list[SimTask]]:
    """Tasks by a key."""
    groups: dict[Any, list[SimTask]] = {}
    for task in tasks:
        groups.setdefault(key(task), []).append(task)
    return groups


def close(a: float | None, b: float | None, relative: float = 1e-9) -> bool:
    """Both None, or equal within `relative`."""
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=relative, abs_tol=1e-12)


# Two sessions of one kind (to compare), retries and timeouts, a fan-out on a second partition,
# subtasks (some retried), a chain, and a session cancelled halfway.
SCENARIO = scenario_from_dict({
    "name": "analytics",
    "seed": 21,
    "partitions": [{"id": "cpu", "pods": 3, "slots": 2}, {"id": "gpu", "pods": 2}],
    "sessions": [
        {"name": "pricing", "partition": "cpu", "count": 2, "every": 6,
         "graph": {"kind": "bag", "tasks": 60}, "application": {"name": "pricing"},
         "profile": {"processing": {"kind": "lognormal", "mean": 0.6, "spread": 0.8},
                     "error_rate": 0.15, "timeout_rate": 0.03},
         "max_retries": 2, "max_duration": 3.0},
        {"name": "risk", "partition": "gpu", "start": 1, "graph": {"kind": "fanout", "tasks": 20},
         "application": {"name": "risk"},
         "profile": {"processing": {"kind": "exponential", "mean": 0.8}}},
        {"name": "dag", "partition": "cpu", "start": 2,
         "graph": {"kind": "subtasking", "tasks": 3}, "max_retries": 1,
         "profile": {"processing": 0.5, "subtask_depth": 2, "subtask_children": 2,
                     "error_rate": 0.1}},
        {"name": "chain", "partition": "gpu", "start": 3, "graph": {"kind": "chain", "tasks": 12},
         "profile": {"processing": {"kind": "uniform", "mean": 0.4, "spread": 0.3}}},
        {"name": "doomed", "partition": "gpu", "start": 4, "close_when_done": False,
         "graph": {"kind": "bag", "tasks": 12}, "profile": {"processing": 2},
         "lifecycle": [{"action": "cancel", "at": 3}]},
    ],
})
