"""Benchmark the Parquet archive: write throughput, event-loop stalls, bytes per task, queries.

1. Write: `--rows` (1M) synthetic TaskFacts shaped like the `large` built-in scenario (10 sessions
   of rows/10 tasks, partitions default (8 sessions, lognormal processing, 1% failures retried)
   and gpu (2 sessions, exponential processing); UUID ids, every timestamp set, options, and the
   lists of ListTasksDetailed for "detailed" facts). They are synthetic because playing `large`
   in the simulator takes ~80 s here, half the time budget; the slot queueing, durations and
   retries follow the scenario's profile. Timed: `ArchiveSink.consume` + flushes end to end
   (pages of 1,000 rows, a producer that lets at most `max_buffer_rows` wait, as ListTasks pages
   would arrive; the sink converts one flush while it writes the one before), then in isolation
   `arrow.facts_batches` (columns to Arrow, as the writer does) and `segments.write_segment`
   (Parquet zstd + fsync + rename). Rows/s on the wall clock and per CPU-second (this process,
   every thread), against the issue's 500k rows/s.
2. Loop stalls: a ticker coroutine sleeps 1 ms in a loop and records loop.time() deltas minus
   the sleep: idle first (the timer's and the machine's own noise), during the end-to-end write,
   during one flush of every row at once (the worst case; the sink then holds the only reference
   to the records and frees them itself), and during 200k-row flushes with the GIL switch
   interval at Python's default 5 ms then at the exporter's 1 ms (alternated, twice each).
   Everything else runs under the exporter's process settings (runner.tune_process: GC
   thresholds, 1 ms switch interval). Garbage-collector passes meanwhile (gc.callbacks, any
   thread: a pass holds the GIL) are counted beside.
3. Bytes per archived task: tasks segments' bytes / rows, detailed and summary facts, as written
   (100k-row flushes, and 10k-row flushes as a 5 s flush interval at 2k facts/s gives) and after
   `maintenance.compact` (which also deduplicates).
4. Query: in a fresh process, `archive.open(dir)`, the connection (segment index and views), the
   grouped percentile query on the `tasks` view (DuckDB, cold then warm; then over `tasks_raw`,
   to price the view's deduplication) and the same with Polars over `archive.lazy("tasks")`;
   rows scanned/s count the raw rows read. The OS page cache is warm (the archive was just
   written): "cold" means a new process and connection. As written, then compacted.
   Baseline: armonik-analytics 0.0.2 (pip-installed into a temporary directory if missing, run
   in its own process with this interpreter and its armonik) computes its StartedToEnded
   transition over the one session of `--analytics-tasks` tasks that a real simulator (a
   one-session slice of `large`) played and serves; the same tasks, archived by the simulator's
   process, are queried by the archive. analytics pages ListTasksDetailed 1,000 at a time and
   adds up per-page means; its time is extrapolated linearly to the large archive's rows. The
   slice's percentiles also check the synthetic facts' shape against the simulator's.

usage: python -m bench.bench_archive [--rows 1000000] [--write-rounds 3]
       [--analytics-tasks 50000] [--profile] [--skip-write] [--skip-lag] [--skip-bytes]
       [--skip-query] [--skip-analytics] [--keep]
--skip-write skips the isolated conversion and write (the end-to-end write makes the archive the
other measures use); --skip-bytes also skips compaction and so the compacted query.
Writes bench/results/archive.json. Takes 1.5 to 2 minutes with the defaults on 2 busy cores.
"the other processes' CPU" rows say how many cores other jobs took: above 0.2, read the
per-CPU-second figures and ratios rather than the wall-clock rates.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import heapq
import io
import json
import math
import os
import pstats
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pyarrow.compute as pc

from armonik_observe.archive import arrow, layout, maintenance, schema, segments
from armonik_observe.archive import open as open_archive
from armonik_observe.archive.stages import split_batch
from armonik_observe.archive.writer import ArchiveSink
from armonik_observe.fact_columns import TaskFacts
from armonik_observe.model import TaskFact
from armonik_observe.pipeline import Batch
from armonik_observe.runner import tune_process
from bench import common
from bench.common import BenchError, CpuSampler, Row

NAME = "archive"
HOST = "127.0.0.1"
READY = "READY "
TARGET_ROWS_PER_S = 500_000.0  # the issue: task rows archived per second
TARGET_STALL_MS = 5.0  # the issue: the writer never blocks the event loop longer than this
PAGE_ROWS = 1000  # a ListTasks page
FLUSH_ROWS = 100_000  # the sink's default max_buffer_rows
SMALL_FLUSH_ROWS = 10_000  # a 5 s flush interval at 2k facts/s
SMALL_SAMPLE_ROWS = 200_000  # rows written with small flushes (bytes/row does not need more)
TICK_S = 0.001
ANALYTICS_VERSION = "0.0.2"
NOISY = 0.2  # cores taken by other processes above which rates are unreliable

QUANTILE_SQL = (
    "SELECT partition_id, status, count(*) AS tasks, "
    "quantile_cont(processing_to_end_seconds, 0.5) AS p50, "
    "quantile_cont(processing_to_end_seconds, 0.95) AS p95, "
    "quantile_cont(processing_to_end_seconds, 0.99) AS p99 "
    "FROM tasks GROUP BY ALL ORDER BY ALL"
)
MEAN_SQL = ("SELECT count(*), avg(processing_to_end_seconds), min(processing_to_end_seconds), "
            "max(processing_to_end_seconds) FROM tasks")


# ------------------------------------------------------------------------ synthetic facts


@dataclass(frozen=True)
class SessionShape:
    """One session of the `large` scenario: where it runs, when it starts, how tasks behave."""

    partition: str
    start_s: float
    tasks: int
    processing: Callable[[random.Random], float]  # seconds
    error_rate: float
    group: str


MICROS = 1_000_000
STAGE_US = 1000  # creation, queue, acquisition, fetch and finalize: 1 ms each in `large`
BATCH = 5000  # tasks submitted per batch
SLOTS = {"default": 1000 * 10, "gpu": 200 * 10}  # pods x slots of `large`
MAX_RETRIES = 2
ERROR = "worker failed: simulated error"


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


# ------------------------------------------------------------------------------ measuring


@dataclass
class Window:
    """Wall and CPU seconds of this process (every thread) and of the others, over a block."""

    wall: float = 0.0
    cpu: float = 0.0
    other_cpu: float = 0.0

    @property
    def other_share(self) -> float:
        """Cores other processes kept busy meanwhile."""
        return max(self.other_cpu, 0.0) / max(self.wall, 1e-9)

    def figures(self, rows: int) -> dict[str, float]:
        """The window as JSON figures, with rows/s on both clocks."""
        return {"rows": rows, "wall_s": round(self.wall, 3), "cpu_s": round(self.cpu, 3),
                "rows_per_s": round(rows / max(self.wall, 1e-9), 1),
                "rows_per_cpu_s": round(rows / max(self.cpu, 1e-9), 1),
                "us_per_row": round(1e6 * self.wall / max(rows, 1), 3),
                "other_cpu_share": round(self.other_share, 3)}


@contextmanager
def window() -> Iterator[Window]:
    """Measure the block's wall time, this process's CPU and the rest of the machine's."""
    measured = Window()
    busy0, cpu0, wall0 = common.machine_busy_seconds(), time.process_time(), time.perf_counter()
    yield measured
    measured.wall = time.perf_counter() - wall0
    measured.cpu = time.process_time() - cpu0
    measured.other_cpu = common.machine_busy_seconds() - busy0 - measured.cpu


class LagProbe:
    """A coroutine sleeping TICK_S in a loop; each wake-up's lateness is the loop's lag."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.gc_pauses: list[float] = []  # every collection meanwhile, whichever thread ran it
        self._gc_started = 0.0
        self._stop = False
        self._task: asyncio.Task[None] | None = None
        self._started = 0.0
        self._wall = 0.0

    def start(self) -> None:
        """Start ticking on the running loop."""
        self._started = time.perf_counter()
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.create_task(self._run(), name="lag-probe")

    async def stop(self) -> dict[str, Any]:
        """Stop ticking; the lag figures in milliseconds."""
        self._stop = True
        if self._task is not None:
            await self._task
        self._wall = time.perf_counter() - self._started
        gc.callbacks.remove(self._on_gc)
        figures = lag_figures(self.lags, self._wall)
        pauses = sorted(self.gc_pauses)
        figures.update({"gc_passes": len(pauses),
                        "gc_max_ms": round(1000 * pauses[-1], 3) if pauses else 0.0,
                        "gc_pauses_over_5ms": sum(1 for p in pauses if p > 0.005)})
        return figures

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        # A collection holds the GIL throughout: the loop's thread waits it out.
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pauses.append(time.perf_counter() - self._gc_started)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop:
            before = loop.time()
            await asyncio.sleep(TICK_S)
            self.lags.append(loop.time() - before - TICK_S)


def lag_figures(lags: list[float], wall: float) -> dict[str, Any]:
    """Max, p99, p99.9 and stalls over the target, in milliseconds."""
    ordered = sorted(lags)
    n = len(ordered)

    def quantile(q: float) -> float:
        return 1000 * ordered[min(n - 1, max(0, math.ceil(q * n) - 1))] if n else 0.0

    return {"ticks": n, "wall_s": round(wall, 3),
            "max_ms": round(1000 * ordered[-1], 3) if n else 0.0,
            "p50_ms": round(quantile(0.5), 3), "p99_ms": round(quantile(0.99), 3),
            "p999_ms": round(quantile(0.999), 3),
            "stalls_over_5ms": sum(1 for lag in ordered if lag > TARGET_STALL_MS / 1000),
            "stalls_over_10ms": sum(1 for lag in ordered if lag > 0.010),
            "switch_interval_ms": round(1000 * sys.getswitchinterval(), 3)}


def tasks_size(directory: Path) -> dict[str, Any]:
    """Files, rows and bytes of the tasks table, from segment metadata."""
    stats = open_archive(directory).stats()["tasks"]
    return {"files": stats.files, "rows": stats.rows, "bytes": stats.bytes,
            "bytes_per_row": round(stats.bytes / max(stats.rows, 1), 1)}


def fresh_dir(root: Path, name: str) -> Path:
    """An empty directory `name` under root (removed first if present)."""
    path = root / name
    shutil.rmtree(path, ignore_errors=True)
    return path


# ------------------------------------------------------------------------------ 1, 2: write


def pages_of(facts: list[TaskFact]) -> list[TaskFacts]:
    """The facts as the collector publishes them: columns, PAGE_ROWS rows a page."""
    return [TaskFacts.of(facts[start:start + PAGE_ROWS])
            for start in range(0, len(facts), PAGE_ROWS)]


def row_count(pages: list[TaskFacts]) -> int:
    """Rows in the pages."""
    return sum(map(len, pages))


async def sink_write(directory: Path, pages: list[TaskFacts], flush_rows: int,
                     probe: bool) -> dict[str, Any]:
    """The pages into a started sink, never more than `flush_rows` waiting; stop()."""
    sink = ArchiveSink(directory, flush_interval=5.0, max_buffer_rows=flush_rows)
    lag = LagProbe()
    if probe:
        lag.start()
    await sink.start()
    with window() as measured:
        for page in pages:
            # The sink signals no swap of its buffer: poll until the flush in flight takes it.
            while sink.stats.buffered_rows >= flush_rows:  # noqa: ASYNC110
                await asyncio.sleep(0.001)
            sink.consume(Batch(facts=page))
            await asyncio.sleep(0)
        await sink.stop()
    stats = sink.stats
    rows = row_count(pages)
    result: dict[str, Any] = {**measured.figures(rows), "flush_rows": flush_rows,
                              "segments": stats.segments_written, "bytes": stats.bytes_written,
                              "rows_written": stats.rows_written,
                              "dropped_rows": stats.dropped_rows}
    if probe:
        result["lag"] = await lag.stop()
        result["lag_raw"] = lag.lags
    if stats.rows_written != rows:
        raise BenchError(f"the sink wrote {stats.rows_written} of {rows} rows "
                         f"({stats.dropped_rows} dropped)")
    return result


async def one_flush(directory: Path, pages: list[TaskFacts], *, idle_first: bool = False,
                    switch_interval: float | None = None) -> dict[str, Any]:
    """Every row consumed at once, then one flush() while the probe ticks: the worst case.

    The caller's list is emptied after consume: when nothing else holds the pages, the sink
    frees them itself, as in the exporter. `switch_interval` sets sys.setswitchinterval for the
    flush (how long the loop's thread may wait for the GIL before the worker is made to drop it).
    """
    rows = row_count(pages)
    sink = ArchiveSink(directory, flush_interval=3600.0, max_buffer_rows=rows + 1)
    result: dict[str, Any] = {}
    if idle_first:
        idle = LagProbe()
        idle.start()
        await asyncio.sleep(1.0)
        result["idle_lag"] = await idle.stop()
    for page in pages:
        sink.consume(Batch(facts=page))
    pages.clear()
    default_interval = sys.getswitchinterval()
    if switch_interval is not None:
        sys.setswitchinterval(switch_interval)
    try:
        lag = LagProbe()
        lag.start()
        with window() as measured:
            await sink.flush()
        result["lag"] = await lag.stop()
        result["lag_raw"] = lag.lags
    finally:
        sys.setswitchinterval(default_interval)
    return {**measured.figures(rows), **result, "segments": sink.stats.segments_written}


def write_rounds(run: Run, root: Path, keep: Path, pages: list[TaskFacts],
                 rounds: int) -> dict[str, Any] | None:
    """sink_write `rounds` times (the first into `keep`, the archive later measures read), the
    median round's figures with every round's rate, and the loop lag of all rounds pooled:
    single runs swing by a quarter on this machine."""
    results = []
    for index in range(rounds):
        directory = keep if index == 0 else fresh_dir(root, "round")
        result = run.attempt(f"write_e2e_{index}", asyncio.run,
                             sink_write(directory, pages, FLUSH_ROWS, probe=True))
        if result is None:
            return None
        results.append(result)
    shutil.rmtree(root / "round", ignore_errors=True)
    rates = [result["rows_per_s"] for result in results]
    median = sorted(results, key=lambda result: result["rows_per_s"])[len(results) // 2]
    pooled = [lag for result in results for lag in result.pop("lag_raw")]
    median["lag"] = {**median["lag"], **lag_figures(pooled, sum(r["wall_s"] for r in results))}
    return {**median, "rounds_rows_per_s": rates}


def by_session(batches: list[pa.RecordBatch]) -> dict[str, pa.Table]:
    """Batches split by session, as the writer splits them by partition."""
    groups: dict[str, list[pa.RecordBatch]] = {}
    for batch in batches:
        for session, part in split_batch(batch, "session_id").items():
            groups.setdefault(session, []).append(part)
    return {session: pa.Table.from_batches(parts) for session, parts in groups.items()}


def convert_and_write(directory: Path, pages: list[TaskFacts]) -> dict[str, Any]:
    """arrow.facts_batches (pages of columns to Arrow, as the sink's worker does), then
    segments.write_segment session by session, each timed alone."""
    now = int(time.time() * MICROS)
    with window() as convert:
        batches = list(arrow.facts_batches([(now, page) for page in pages]))
    tables = by_session(batches)
    layout.prepare(directory)
    size = 0
    with window() as write:
        for session, table in tables.items():
            partition = layout.partition_dir(directory, "tasks", "session_id", session)
            size += segments.write_segment(schema.TASKS, partition, table).stat().st_size
    arrow_bytes = sum(t.nbytes for t in tables.values())
    rows = row_count(pages)
    return {"convert": convert.figures(rows),
            "write": {**write.figures(rows), "bytes": size,
                      "mb_per_s": round(size / 1e6 / max(write.wall, 1e-9), 1),
                      "arrow_mb_per_s": round(arrow_bytes / 1e6 / max(write.wall, 1e-9), 1)},
            "arrow_bytes": arrow_bytes, "sessions": len(tables)}


def profile_convert(pages: list[TaskFacts], top: int = 18) -> str:
    """cProfile of facts_batches + write over the pages (one partition): where the time goes."""
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory(prefix="archive-profile-") as tmp:
        directory = Path(tmp)
        layout.prepare(directory)
        partition = layout.partition_dir(directory, "tasks", "session_id", "profiled")
        profiler.enable()
        now = int(time.time() * MICROS)
        table = pa.Table.from_batches(arrow.facts_batches([(now, page) for page in pages]))
        segments.write_segment(schema.TASKS, partition, table)
        profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


# ------------------------------------------------------------------------------ 3: bytes


def compact_figures(directory: Path) -> dict[str, Any]:
    """Bytes per task before and after maintenance.compact."""
    before = tasks_size(directory)
    with window() as measured:
        report = maintenance.compact(directory)
    after = tasks_size(directory)
    return {"before": before, "after": after, "compact_wall_s": round(measured.wall, 3),
            "compact_cpu_s": round(measured.cpu, 3), "merged": report.merged,
            "written": report.written}


# ------------------------------------------------------------------------------ 4: query


def query_worker(directory: Path) -> dict[str, Any]:
    """In a fresh process: open the archive, run the grouped percentiles (DuckDB, Polars)."""
    import polars as pl  # already loaded by armonik_observe.archive; named here for the query

    started = psutil.Process().create_time()
    result: dict[str, Any] = {"startup_and_imports_s": round(time.time() - started, 3)}
    timings: dict[str, dict[str, float]] = {}

    def timed(name: str, call: Callable[[], Any]) -> Any:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        value = call()
        timings[name] = {"wall_s": round(time.perf_counter() - wall0, 4),
                         "cpu_s": round(time.process_time() - cpu0, 4)}
        return value

    archive = timed("open", lambda: open_archive(directory))
    timed("connect", archive.__enter__)
    try:
        raw_rows = archive.stats()["tasks"].rows
        connection = archive.connection
        duck = timed("duckdb_cold", lambda: connection.execute(QUANTILE_SQL).fetchall())
        timed("duckdb_warm", lambda: connection.execute(QUANTILE_SQL).fetchall())
        # The same over every raw row: what the view's deduplication (a window over task_id)
        # costs.
        raw_sql = QUANTILE_SQL.replace("FROM tasks ", "FROM tasks_raw ")
        timed("duckdb_raw_warm", lambda: connection.execute(raw_sql).fetchall())
        mean = timed("duckdb_mean", lambda: connection.execute(MEAN_SQL).fetchall()[0])
        files = len(archive.files("tasks"))
    finally:
        archive.__exit__(None, None, None)
    col = pl.col("processing_to_end_seconds")

    def polars_query() -> Any:
        return (archive.lazy("tasks").group_by("partition_id", "status")
                .agg(pl.len().alias("tasks"), col.quantile(0.5, "linear").alias("p50"),
                     col.quantile(0.95, "linear").alias("p95"),
                     col.quantile(0.99, "linear").alias("p99"))
                .sort("partition_id", "status").collect())

    frame = timed("polars_cold", polars_query)
    timed("polars_warm", polars_query)
    groups = [list(row) for row in duck]
    polar_rows = [list(row) for row in frame.rows()]
    agree = len(groups) == len(polar_rows) and all(
        a[:3] == b[:3] and all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
                               for x, y in zip(a[3:], b[3:], strict=True))
        for a, b in zip(groups, polar_rows, strict=True))
    result.update({"raw_rows": raw_rows, "files": files, "timings": timings,
                   "groups": groups, "polars_agrees": agree,
                   "tasks": sum(row[2] for row in groups),
                   "mean": {"tasks": mean[0], "avg_s": mean[1], "min_s": mean[2],
                            "max_s": mean[3]},
                   "threads": psutil.Process().num_threads()})
    return result


def run_query_worker(directory: Path) -> dict[str, Any]:
    """query_worker in a child process; its JSON with rows scanned per second added."""
    cmd = [sys.executable, "-m", "bench.bench_archive", "--worker", "query",
           "--archive", str(directory)]
    with CpuSampler(None) as machine:
        started = time.monotonic()
        report, ended = common.run_json(cmd, timeout=300)
    report["child_wall_s"] = round(ended - started, 3)
    report["machine_busy_share"] = round(machine.cpu_between(started, ended)
                                         / max(ended - started, 1e-9), 3)
    for name, timing in report["timings"].items():
        if name.startswith(("duckdb", "polars")):
            timing["rows_scanned_per_s"] = round(report["raw_rows"] / timing["wall_s"], 1)
            timing["rows_per_cpu_s"] = round(report["raw_rows"] / max(timing["cpu_s"], 1e-9), 1)
    return report


# ------------------------------------------------------------------------ analytics baseline


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


def analytics_worker(path: str, endpoint: str, session: str) -> dict[str, Any]:
    """armonik-analytics' StartedToEnded transition over one session, timed (own process)."""
    sys.path.insert(0, path)
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


def ensure_analytics(target: Path) -> tuple[Path | None, str]:
    """armonik-analytics importable from `target`, installed there with pip if missing."""
    marker = target / "armonik_analytics" / "stats.py"
    if marker.is_file():
        return target, "cached"
    print(f"analytics: pip install armonik-analytics=={ANALYTICS_VERSION} numpy into {target} "
          "...", flush=True)
    # armonik (and grpcio) come from this environment: --no-deps keeps the target from
    # shadowing them with other versions.
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--no-deps", "--target", str(target), f"armonik-analytics=={ANALYTICS_VERSION}",
           "numpy"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"pip failed: {error}"
    if done.returncode != 0 or not marker.is_file():
        return None, "pip failed: " + " ".join(done.stderr.split())[-200:]
    return target, "installed"


def measure_analytics(tasks: int, root: Path, install_dir: Path) -> dict[str, Any]:
    """The analytics baseline and the archive query over the same served tasks."""
    path, how = ensure_analytics(install_dir)
    if path is None:
        return {"error": f"armonik-analytics unavailable ({how}); baseline skipped"}
    directory = fresh_dir(root, "slice")
    cmd = [sys.executable, "-m", "bench.bench_archive", "--worker", "serve-slice",
           "--analytics-tasks", str(tasks), "--archive", str(directory)]
    print(f"analytics: simulator plays a {tasks:,}-task slice of `large` ...", flush=True)
    with common.running(cmd, name="serve-slice", ready_prefix=READY, timeout=240) as server:
        info = json.loads(server.ready.removeprefix(READY))
        print("analytics: armonik-analytics pages the session ...", flush=True)
        worker = [sys.executable, "-m", "bench.bench_archive", "--worker", "analytics",
                  "--analytics-path", str(path), "--endpoint", f"{HOST}:{info['port']}",
                  "--session", info["sessions"][0]]
        with CpuSampler(server.pid) as sampler:
            report, exited = common.run_json(worker, timeout=600)
        server_cpu = sampler.cpu_between(exited - report["wall_s"], exited)
    archive = run_query_worker(directory)
    return {"install": how, "server": info, "analytics": {**report,
            "server_cpu_s": round(server_cpu, 3),
            "pages": math.ceil(info["tasks"] / PAGE_ROWS),
            "tasks_per_s": round(info["tasks"] / report["wall_s"], 1)},
            "archive_query": archive}


# ------------------------------------------------------------------------------------ rows


def ratio_row(label: str, value: float, target: float, unit: str = "/s",
              verdict: str = "") -> Row:
    """A row compared with a higher-is-better target."""
    text = common.ratio_verdict(value, target)
    return Row(label, value, unit, target, f"{text} {verdict}".strip())


def other_row(label: str, share: float) -> Row:
    """Cores other processes used meanwhile: above NOISY, read ratios, not rates."""
    return Row(label, share, "cores", NOISY, "quiet" if share < NOISY else "NOISY")


def write_rows(write: dict[str, Any]) -> list[Row]:
    """Rows of measure 1."""
    rows: list[Row] = []
    e2e = write["e2e_detailed"]
    rates = e2e["rounds_rows_per_s"]
    rows += [
        ratio_row(f"write e2e detailed: rows/s (wall), median of {len(rates)}",
                  e2e["rows_per_s"], TARGET_ROWS_PER_S,
                  verdict=f"{e2e['rows']:,} rows; rounds "
                          + ", ".join(f"{rate / 1000:.0f}k" for rate in rates)),
        ratio_row("write e2e detailed: rows/CPU-s", e2e["rows_per_cpu_s"], TARGET_ROWS_PER_S,
                  verdict=f"CPU {e2e['cpu_s']:.2f}s, {e2e['segments']} segments"),
        other_row("write e2e detailed: other processes' CPU", e2e["other_cpu_share"]),
    ]
    if "e2e_summary" in write:
        summary = write["e2e_summary"]
        rows += [
            ratio_row("write e2e summary: rows/s (wall)", summary["rows_per_s"],
                      TARGET_ROWS_PER_S, verdict=f"CPU {summary['cpu_s']:.2f}s"),
            ratio_row("write e2e summary: rows/CPU-s", summary["rows_per_cpu_s"],
                      TARGET_ROWS_PER_S),
        ]
    if "alone_detailed" not in write:
        return rows
    convert, parquet = write["alone_detailed"]["convert"], write["alone_detailed"]["write"]
    rows += [
        ratio_row("facts to Arrow alone: rows/s", convert["rows_per_s"], TARGET_ROWS_PER_S,
                  verdict=f"{convert['us_per_row']:.2f} us/row, CPU {convert['cpu_s']:.2f}s"),
        ratio_row("write_segment alone: rows/s", parquet["rows_per_s"], TARGET_ROWS_PER_S,
                  verdict=f"{parquet['mb_per_s']:g} MB/s out, CPU {parquet['cpu_s']:.2f}s"),
        other_row("to Arrow + write alone: other processes' CPU",
                  max(convert["other_cpu_share"], parquet["other_cpu_share"])),
    ]
    return rows


def lag_rows(label: str, lag: dict[str, Any]) -> list[Row]:
    """Rows for one lag measurement."""
    rows = [
        Row(f"loop lag {label}: max", lag["max_ms"], "ms", TARGET_STALL_MS,
            common.ratio_verdict(lag["max_ms"], TARGET_STALL_MS, higher_is_better=False)),
        Row(f"loop lag {label}: p99 | p99.9", f"{lag['p99_ms']:.2f} | {lag['p999_ms']:.2f}",
            "ms", verdict=f"{lag['ticks']:,} ticks over {lag['wall_s']:.1f}s"),
        Row(f"loop lag {label}: stalls > 5 ms", lag["stalls_over_5ms"], "", 0,
            ("ok" if lag["stalls_over_5ms"] == 0 else "STALLS")
            + f"; {lag['stalls_over_10ms']} > 10 ms"),
    ]
    if "gc_passes" in lag:
        rows.append(Row(f"loop lag {label}: GC passes > 5 ms", lag["gc_pauses_over_5ms"], "",
                        verdict=f"longest {lag['gc_max_ms']:.1f} ms of {lag['gc_passes']} "
                                "passes"))
    return rows


def bytes_rows(label: str, figures: dict[str, Any]) -> list[Row]:
    """Rows for bytes per task before and after compaction."""
    before, after = figures["before"], figures["after"]
    return [
        Row(f"bytes/task {label}: as written", before["bytes_per_row"], "B",
            verdict=f"{before['files']} segments, {before['rows']:,} rows"),
        Row(f"bytes/task {label}: compacted", after["bytes_per_row"], "B",
            verdict=f"x{after['bytes_per_row'] / max(before['bytes_per_row'], 1e-9):.2f}; "
                    f"{after['files']} segments, compact {figures['compact_wall_s']:.1f}s"),
    ]


def query_rows(label: str, report: dict[str, Any]) -> list[Row]:
    """Rows for one fresh-process query run."""
    t = report["timings"]
    rows = [
        Row(f"query {label}: open() | connect", f"{1000 * t['open']['wall_s']:.1f} | "
            f"{1000 * t['connect']['wall_s']:.0f}", "ms",
            verdict=f"{report['files']} files, {report['raw_rows']:,} raw rows; "
                    f"process start+imports {report['startup_and_imports_s']:.2f}s"),
    ]
    for name in ("duckdb_cold", "duckdb_warm", "duckdb_raw_warm", "polars_cold", "polars_warm"):
        timing = t[name]
        what = name.replace("_", " ").replace("raw", "tasks_raw")
        rows.append(Row(f"query {label}: {what}", timing["wall_s"], "s",
                        verdict=f"{timing['rows_scanned_per_s'] / 1e6:.2f}M rows/s, "
                                f"{timing['rows_per_cpu_s'] / 1e6:.2f}M rows/CPU-s"))
    rows.append(Row(f"query {label}: Polars agrees with DuckDB",
                    "yes" if report["polars_agrees"] else "NO",
                    verdict=f"{len(report['groups'])} groups, {report['tasks']:,} tasks"))
    return rows


def first_answer_s(query: dict[str, Any]) -> float:
    """open() + connect + the cold grouped-percentile query of one query_worker run."""
    t = query["timings"]
    return float(t["open"]["wall_s"] + t["connect"]["wall_s"] + t["duckdb_cold"]["wall_s"])


def group_of(query: dict[str, Any], partition: str) -> list[Any] | None:
    """The grouped-percentile row of one partition's COMPLETED tasks."""
    return next((row for row in query["groups"]
                 if row[0] == partition and row[1] == "COMPLETED"), None)


def analytics_rows(result: dict[str, Any], large: dict[str, Any] | None) -> list[Row]:
    """Rows comparing armonik-analytics with the archive over the same tasks."""
    a, q, info = result["analytics"], result["archive_query"], result["server"]
    archive_first = first_answer_s(q)
    true_mean, reported = q["mean"]["avg_s"], a["values"]["avg"]
    rows = [
        Row("baseline: tasks served (simulator slice)", info["tasks"], "",
            verdict=f"played in {info['play_s']:.1f}s"),
        Row("baseline: armonik-analytics StartedToEnded", a["wall_s"], "s",
            verdict=f"{a['tasks_per_s']:,.0f} tasks/s; CPU client {a['cpu_s']:.1f}s, "
                    f"server {a['server_cpu_s']:.1f}s, {a['pages']} pages"),
        Row("baseline: archive open+connect+percentiles", archive_first, "s",
            verdict=f"x{a['wall_s'] / max(archive_first, 1e-9):.0f} faster, same tasks"),
        Row("baseline: analytics 'avg' vs true mean", reported or 0.0, "s", true_mean,
            f"x{(reported or 0.0) / max(true_mean, 1e-9):.1f} (sums per-page means)"),
    ]
    if large:
        synthetic, played = group_of(large, "default"), group_of(q, "default")
        if synthetic and played:
            rows.append(Row("shape: default COMPLETED p50|p95|p99, synthetic",
                            " | ".join(f"{v:.2f}" for v in synthetic[3:]), "s",
                            verdict="simulator slice: "
                                    + " | ".join(f"{v:.2f}" for v in played[3:])))
        extrapolated = large["raw_rows"] / a["tasks_per_s"]
        large_first = first_answer_s(large)
        rows.append(Row(f"baseline: analytics over {large['raw_rows'] / 1e6:.1f}M tasks",
                        extrapolated, "s",
                        verdict=f"extrapolated; archive {large_first:.2f}s, "
                                f"x{extrapolated / max(large_first, 1e-9):.0f}"))
    return rows


# ------------------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000,
                        help="task rows of the large-shaped archive (default 1000000)")
    parser.add_argument("--analytics-tasks", type=int, default=50_000,
                        help="tasks of the simulator slice the baseline pages (default 50000)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where to write the archives (default: a temporary directory)")
    parser.add_argument("--analytics-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / f"armonik-analytics-"
                                                              f"{ANALYTICS_VERSION}",
                        help="where armonik-analytics is (or gets) pip-installed")
    parser.add_argument("--profile", action="store_true",
                        help="print a cProfile of facts_batches + write over 200k detailed rows")
    parser.add_argument("--write-rounds", type=int, default=3,
                        help="end-to-end detailed writes; the median is reported")
    parser.add_argument("--keep", action="store_true", help="keep the archives written")
    for name in SECTIONS:
        parser.add_argument(f"--skip-{name}", action="store_true")
    parser.add_argument("--worker", choices=("query", "serve-slice", "analytics"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--archive", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--analytics-path", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--session", help=argparse.SUPPRESS)
    return parser.parse_args()


SECTIONS = ("write", "lag", "bytes", "query", "analytics")


@dataclass
class Run:
    """Results, table rows and failures gathered so far."""

    results: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    _mark: float = field(default_factory=time.monotonic)

    def phase(self, name: str) -> None:
        """Close the phase `name`: its wall time since the previous one."""
        now = time.monotonic()
        self.phases[name] = round(now - self._mark, 1)
        self._mark = now

    def attempt(self, key: str, measure: Callable[..., Any], *args: Any,
                keep: bool = False) -> Any:
        """Run a measurement; an error is recorded (and shown) without stopping the others.

        With `keep`, the result is stored in the results under `key` as well.
        """
        try:
            value = measure(*args)
        except (BenchError, OSError, subprocess.TimeoutExpired, ValueError) as error:
            message = " ".join(str(error).split())[:200]
            print(f"  {key} failed: {message}", file=sys.stderr, flush=True)
            self.failed.append({"measure": key, "error": message})
            self.rows.append(Row(key, "ERROR", verdict=message))
            return None
        if isinstance(value, dict) and "error" in value:
            self.results[key] = value
            self.rows.append(Row(key, "skipped", verdict=value["error"]))
            return None
        if keep:
            self.results[key] = value
        return value


def run_worker(args: argparse.Namespace) -> None:
    """The hidden child modes: one JSON line, or a server."""
    if args.worker == "query":
        print(json.dumps(query_worker(args.archive)), flush=True)
    elif args.worker == "serve-slice":
        asyncio.run(serve_slice(args.analytics_tasks, args.archive))
    else:
        print(json.dumps(analytics_worker(args.analytics_path, args.endpoint, args.session)),
              flush=True)


def write_part(args: argparse.Namespace, run: Run, root: Path) -> Path | None:
    """Measures 1 to 3; returns the large-shaped (detailed) archive for the query."""
    print(f"facts: building {args.rows:,} large-shaped tasks (detailed and summary) ...",
          flush=True)
    with window() as built:
        records, summary_records = freeze_facts(lambda: synth_facts(args.rows))
        # Columns, as the collector publishes them; built before any timing.
        detailed = freeze_facts(partial(pages_of, records))
        summary = freeze_facts(partial(pages_of, summary_records))
    run.results["facts"] = {"source": "synthetic, shaped like the large scenario "
                                      "(simulating it takes ~80 s)",
                            "detailed_rows": len(records), "build_s": round(built.wall, 2),
                            "gc_frozen": True,
                            "sessions": len({f.session_id for f in records[:: 997]}),
                            "retried": sum(1 for f in records if f.status == "RETRIED")}
    del records, summary_records
    run.phase("build facts")
    large = fresh_dir(root, "large")
    write: dict[str, Any] = {}
    if not args.skip_write:
        print("write: facts_batches and write_segment alone ...", flush=True)
        alone = run.attempt("write_alone", convert_and_write, fresh_dir(root, "alone"),
                            detailed)
        shutil.rmtree(root / "alone", ignore_errors=True)
        if args.profile:
            print(profile_convert(detailed[:200_000 // PAGE_ROWS]), flush=True)
        if alone:
            write["alone_detailed"] = alone
    print(f"write: ArchiveSink end to end, detailed facts, with the lag probe, "
          f"{args.write_rounds} rounds ...", flush=True)
    e2e = write_rounds(run, root, large, detailed, args.write_rounds)
    if e2e is None:
        return None
    write["e2e_detailed"] = e2e
    run.phase("write detailed")
    lag: dict[str, Any] = {"e2e": e2e.pop("lag")}
    if not args.skip_lag:
        print("lag: one flush of every row at once ...", flush=True)
        worst = run.attempt("lag_one_flush", asyncio.run, one_flush(
            fresh_dir(root, "one-flush"), detailed, idle_first=True))
        if worst:
            del worst["lag_raw"]
            lag["idle"] = worst.pop("idle_lag")
            lag["one_flush"] = worst.pop("lag")
            lag["one_flush_write"] = worst
    del detailed
    run.phase("lag")
    if not args.skip_write or not args.skip_bytes:
        print("write: ArchiveSink end to end, summary facts ...", flush=True)
        summary_dir = fresh_dir(root, "summary")
        result = run.attempt("write_e2e_summary", asyncio.run,
                             sink_write(summary_dir, summary, FLUSH_ROWS, probe=False))
        if result:
            write["e2e_summary"] = result
        run.phase("write summary")
    if not args.skip_lag:
        print("lag: one flush of summary rows, GIL switch interval 5 ms then 1 ms ...",
              flush=True)
        # Alternated, twice each, and pooled: the machine's noise drifts within seconds.
        pooled: dict[str, list[float]] = {"switch_5ms": [], "switch_1ms": []}
        walls: dict[str, float] = {"switch_5ms": 0.0, "switch_1ms": 0.0}
        for label, interval in (("switch_5ms", 0.005), ("switch_1ms", 0.001)) * 2:
            pair = run.attempt(f"lag_{label}", asyncio.run, one_flush(
                fresh_dir(root, "one-flush"), summary[:SMALL_SAMPLE_ROWS // PAGE_ROWS],
                switch_interval=interval))
            if pair:
                pooled[label] += pair.pop("lag_raw")
                walls[label] += pair["lag"]["wall_s"]
                lag.setdefault(f"{label}_runs", []).append(pair)
        for label, lags in pooled.items():
            if lags:
                lag[label] = lag_figures(lags, walls[label])
        run.phase("lag: switch interval")
    shutil.rmtree(root / "one-flush", ignore_errors=True)
    run.results["write"] = write
    run.results["lag"] = lag
    run.rows += write_rows(write)
    if "idle" in lag:
        run.rows += lag_rows("idle (timer noise)", lag["idle"])
    run.rows += lag_rows(f"e2e write x{len(e2e['rounds_rows_per_s'])}", lag["e2e"])
    run.rows.append(other_row("loop lag e2e write: other processes' CPU",
                              e2e["other_cpu_share"]))
    if "one_flush" in lag:
        flush = lag["one_flush_write"]
        label = f"one {flush['rows'] // 1000}k-row flush"
        run.rows += lag_rows(label, lag["one_flush"])
        run.rows.append(other_row(f"loop lag {label}: other processes' CPU",
                                  flush["other_cpu_share"]))
    for label in ("switch_5ms", "switch_1ms"):
        if label in lag:
            runs = lag[f"{label}_runs"]
            name = f"{len(runs)}x {runs[0]['rows'] // 1000}k flush, {label.replace('_', ' ')}"
            run.rows += lag_rows(name, lag[label])
    if not args.skip_bytes:
        print("bytes: small flushes, then compaction ...", flush=True)
        small = fresh_dir(root, "small")
        asyncio.run(sink_write(small, summary[:SMALL_SAMPLE_ROWS // PAGE_ROWS], SMALL_FLUSH_ROWS,
                               False))
        # The detailed archive is compacted after its query as written (query_part).
        figures = {label: run.attempt(f"compact {label}", compact_figures, directory)
                   for label, directory in (("summary, 100k flushes", root / "summary"),
                                            ("summary, 10k flushes", small))
                   if directory.exists()}
        run.results["bytes"] = figures
    del summary
    gc.unfreeze()
    gc.collect()
    run.phase("bytes: small flushes + compact summaries")
    return large


def query_part(args: argparse.Namespace, run: Run, large: Path) -> None:
    """Measure 4 on the large-shaped archive as written, then (unless --skip-bytes, which skips
    its compaction) compacted."""
    print("query: fresh process, archive as written ...", flush=True)
    written = run.attempt("query_as_written", run_query_worker, large, keep=True)
    if written:
        run.rows += query_rows("as written", written)
    run.phase("query as written")
    if args.skip_bytes:
        return
    print("bytes: compacting the detailed archive ...", flush=True)
    figures = run.attempt("compact detailed", compact_figures, large)
    if not figures:
        return
    run.results.setdefault("bytes", {})["detailed, 100k flushes"] = figures
    print("query: fresh process, compacted archive ...", flush=True)
    compacted = run.attempt("query_compacted", run_query_worker, large, keep=True)
    if compacted:
        run.rows += query_rows("compacted", compacted)
    run.phase("compact + query compacted")


def main() -> None:
    args = parse_args()
    if args.worker:
        run_worker(args)
        return
    tune_process()  # measure under the exporter's own process settings
    started = time.monotonic()
    run = Run()
    run.results.update({"rows": args.rows, "target_rows_per_s": TARGET_ROWS_PER_S,
                        "target_stall_ms": TARGET_STALL_MS, "page_rows": PAGE_ROWS,
                        "flush_rows": FLUSH_ROWS, "cores": os.cpu_count()})
    owned = args.work_dir is None
    root = Path(tempfile.mkdtemp(prefix="bench-archive-")) if owned else args.work_dir
    root.mkdir(parents=True, exist_ok=True)
    try:
        large = None
        if not (args.skip_write and args.skip_lag and args.skip_bytes and args.skip_query):
            large = write_part(args, run, root)
        if large is not None and not args.skip_query:
            query_part(args, run, large)
        bytes_figures = run.results.get("bytes", {})
        for label in ("detailed, 100k flushes", "summary, 100k flushes", "summary, 10k flushes"):
            if bytes_figures.get(label):
                run.rows += bytes_rows(label, bytes_figures[label])
        if not args.skip_analytics:
            analytics = run.attempt("analytics", measure_analytics, args.analytics_tasks, root,
                                    args.analytics_dir, keep=True)
            if analytics:
                run.rows += analytics_rows(analytics, run.results.get("query_as_written"))
            run.phase("analytics baseline")
    finally:
        if owned and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    run.results["phase_s"] = run.phases
    run.results["errors"] = run.failed
    run.results["total_runtime_s"] = round(time.monotonic() - started, 1)
    print()
    common.print_table(run.rows, f"archive benchmark ({run.results['total_runtime_s']}s)")
    print(f"\nwrote {common.write_results(NAME, run.results)}")
    if owned and args.keep:
        print(f"archives kept in {root}")
    if run.failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
