"""Synthetic task facts shaped like the `large` built-in scenario, as the archive receives them.

10 sessions of rows/10 tasks: partitions default (8 sessions, lognormal processing, 1% failures
retried) and gpu (2 sessions, exponential processing); UUID ids, every timestamp set, options,
and the lists of ListTasksDetailed for "detailed" facts. Synthetic because playing `large` in the
simulator takes ~80 s here; the slot queueing, durations and retries follow the scenario's
profile (the analytics baseline checks the shape against a simulator slice).
"""

from __future__ import annotations

import gc
import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from armonik_observe.fact_columns import TaskFacts
from armonik_observe.model import TaskFact
from bench.common import Window

PAGE_ROWS = 1000  # a ListTasks page
MICROS = 1_000_000
STAGE_US = 1000  # creation, queue, acquisition, fetch and finalize: 1 ms each in `large`
BATCH = 5000  # tasks submitted per batch
SLOTS = {"default": 1000 * 10, "gpu": 200 * 10}  # pods x slots of `large`
MAX_RETRIES = 2
ERROR = "worker failed: simulated error"


@dataclass(frozen=True)
class SessionShape:
    """One session of the `large` scenario: where it runs, when it starts, how tasks behave."""

    partition: str
    start_s: float
    tasks: int
    processing: Callable[[random.Random], float]  # seconds
    error_rate: float
    group: str


def large_shape(rows: int) -> list[SessionShape]:
    """The sessions of `large`, each with rows/10 tasks (100k for 1M rows)."""
    per = max(rows // 10, 1)
    mu = math.log(2.0) - 1.0 / 2  # lognormal of mean 2 s, sigma 1, as simulator.profile draws

    def lognormal(rng: random.Random) -> float:
        return rng.lognormvariate(mu, 1.0)

    def exponential(rng: random.Random) -> float:
        return rng.expovariate(1 / 5.0)

    default = [SessionShape("default", 30.0 * i, per, lognormal, 0.01, "large") for i in range(8)]
    gpu = [SessionShape("gpu", 60.0 * i, per, exponential, 0.0, "large-gpu") for i in range(2)]
    return default + gpu


def uuids(rng: random.Random, n: int) -> list[str]:
    """n random UUID-shaped strings (36 characters), built by Arrow kernels, not a Python loop."""
    if n == 0:
        return []
    data = rng.randbytes(16 * n).hex().encode()
    offsets = pa.array(range(0, 32 * n + 1, 32), pa.int32())
    hexes = pa.StringArray.from_buffers(n, offsets.buffers()[1], pa.py_buffer(data))
    parts = [pc.utf8_slice_codeunits(hexes, a, b)
             for a, b in ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))]
    return pc.binary_join_element_wise(*parts, "-").to_pylist()


def synth_facts(rows: int, seed: int = 7,
                start_us: int = 1_767_225_600 * MICROS) -> tuple[list[TaskFact], list[TaskFact]]:
    """Ended-task facts shaped like `large`: (detailed, summary), the same tasks in both.

    Each partition's slots are a heap of free times: a task is received when it is ready and a
    slot is free (FIFO), so queue waits come out as the scenario's would. A failed attempt (1% in
    `default`) ends RETRIED and a new attempt, retry_of_ids naming it, joins the queue.
    """
    rng = random.Random(seed)
    shapes = large_shape(rows)
    total = sum(s.tasks for s in shapes)
    # Ids: task and payload per task, plus the expected output; retries reuse payload and output.
    pool = iter(uuids(rng, 3 * total + 64))
    spare_ids = uuids(rng, total // 20 + 64)
    detailed: list[TaskFact] = []
    summary: list[TaskFact] = []
    # Each partition's slots as (free_us << 14) | slot: a heap of ints, no tuples.
    free = {p: [(start_us << 14) | slot for slot in range(n)] for p, n in SLOTS.items()}
    hosts = {p: [f"{p}-pod-{s // 10:04d}" for s in range(n)] for p, n in SLOTS.items()}
    owners = {p: [f"{p}-pod-{s // 10:04d}-agent-{s % 10}" for s in range(n)]
              for p, n in SLOTS.items()}
    spare = iter(spare_ids)
    for shape in shapes:
        session_id = next(pool)
        options = (("group", shape.group),)
        heap, host, owner = free[shape.partition], hosts[shape.partition], owners[shape.partition]
        session_start = start_us + int(shape.start_s * MICROS)
        # (ready_us, task_id, payload_id, output_id, initial_id, retry_of_ids)
        queue: list[tuple[int, str, str, str, str, tuple[str, ...]]] = []
        for i in range(shape.tasks):
            task_id = next(pool)
            created = session_start + (i // BATCH) * 10_000
            queue.append((created, task_id, next(pool), next(pool), task_id, ()))
        while queue:
            retries = []
            for created, task_id, payload_id, output_id, initial_id, retry_of in queue:
                submitted = created + STAGE_US
                ready = submitted + STAGE_US
                head = heap[0]
                slot = head & 0x3FFF
                received = max(ready, head >> 14)
                acquired = received + STAGE_US
                started = acquired + STAGE_US
                processed = started + int(shape.processing(rng) * MICROS)
                ended = processed + STAGE_US
                heapq.heapreplace(heap, (ended << 14) | slot)
                failed = rng.random() < shape.error_rate
                if failed and len(retry_of) < MAX_RETRIES:
                    status, error = "RETRIED", ERROR
                    retries.append((ended + STAGE_US, next(spare), payload_id, output_id,
                                    initial_id, (*retry_of, task_id)))
                elif failed:
                    status, error = "ERROR", ERROR
                else:
                    status, error = "COMPLETED", ""
                row = (task_id, session_id, status, shape.partition, "app", "1.0.0",
                       created, submitted, received, acquired, started, started, processed, ended,
                       ended - created, ended - started, ended - received,
                       host[slot], owner[slot], initial_id, payload_id, "", error, error,
                       3600 * MICROS, MAX_RETRIES, 1, options)
                summary.append(TaskFact(*row))
                detailed.append(TaskFact(*row, retry_of, (), (), (output_id,)))
            queue = retries
    return detailed, summary


def freeze_facts(build: Callable[[], Any]) -> Any:
    """Build records with the collector off, then freeze them out of later collections.

    The benchmark holds every record for the whole run; left to the collector, each full pass
    would walk them all, which the exporter (holding one buffer's worth) never pays.
    """
    gc.collect()
    gc.disable()
    try:
        built = build()
    finally:
        gc.enable()
    gc.freeze()
    return built


def fact_from_sim(task: Any, options_cache: dict[int, tuple[tuple[str, str], ...]]) -> TaskFact:
    """A detailed TaskFact straight from a simulator SimTask (what the collector reads, faster)."""
    opts = task.options
    generic = options_cache.get(id(opts))
    if generic is None:
        generic = options_cache[id(opts)] = tuple(sorted(opts.options.items()))
    duration = opts.max_duration
    return TaskFact(
        task.task_id, task.session_id, task.status.name, opts.partition_id,
        opts.application_name, opts.application_version, task.created_at, task.submitted_at,
        task.received_at, task.acquired_at, task.fetched_at, task.started_at, task.processed_at,
        task.ended_at, task.creation_to_end, task.processing_to_end, task.received_to_end,
        task.pod_hostname, task.owner_pod_id, task.initial_task_id, task.payload_id,
        task.created_by, task.status_message, task.output_error,
        int(duration.seconds) * MICROS + int(duration.nanos) // 1000, opts.max_retries,
        opts.priority, generic, tuple(task.retry_of_ids), tuple(task.parent_task_ids),
        tuple(task.data_dependencies), tuple(task.expected_output_ids),
    )


def pages_of(facts: list[TaskFact]) -> list[TaskFacts]:
    """The facts as the collector publishes them: columns, PAGE_ROWS rows a page."""
    return [TaskFacts.of(facts[start:start + PAGE_ROWS])
            for start in range(0, len(facts), PAGE_ROWS)]


def row_count(pages: list[TaskFacts]) -> int:
    """Rows in the pages."""
    return sum(map(len, pages))


def rate_figures(measured: Window, rows: int) -> dict[str, float]:
    """A measured window as JSON figures, with rows/s on both clocks."""
    return {"rows": rows, "wall_s": round(measured.wall, 3), "cpu_s": round(measured.cpu, 3),
            "rows_per_s": round(rows / max(measured.wall, 1e-9), 1),
            "rows_per_cpu_s": round(rows / max(measured.cpu, 1e-9), 1),
            "us_per_row": round(1e6 * measured.wall / max(rows, 1), 3),
            "other_cpu_share": round(measured.other_share, 3)}
