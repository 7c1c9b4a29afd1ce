"""Benchmark the event loop's lag while the archive takes a sustained, realistic load.

`ArchiveSink.consume` is fed ListTasksDetailed-shaped TaskFacts pages (1,000 rows, sorted by
ended_at as the facts poller reads them; the `large` scenario's shape from
bench.bench_archive.synth_facts) at `--rate` rows/s (default 45,000: 10x ArmoniK's published
peak of 4,500 tasks/s) for `--duration` seconds (60) with the sink's defaults (a flush every
5 s, or sooner once 100,000 rows wait: every 2.2 s at this rate), under the exporter's process
settings (runner.tune_process). A probe coroutine sleeps 1 ms in a loop; each wake-up's
lateness is the loop's lag. Targets: p99 <= 5 ms and max <= 20 ms, the median of `--runs` (3)
runs, each in a process of its own (a run's heap and threads never leak into the next). On a
shared machine other processes' load delays the loop too: beside each figure, the same net of
the time the loop's thread waited for a CPU (Linux schedstat), which leaves what the archive's
own threads and calls cause.

The pages are built before the clock starts: a template of up to `--template-rows` distinct
tasks, then a renamed copy of it per cycle (fresh task, payload and output ids; times shifted;
shallow copies of the other columns), all frozen out of the collector (gc.freeze) since the
exporter never holds a minute of pages. The producer drops each page as it hands it over, so
the sink frees the pages itself, as in the exporter.

usage: python -m bench.bench_archive_lag [--duration 60] [--rate 45000] [--runs 3]
Writes bench/results/archive_lag.json. Takes about 4 minutes with the defaults; `--duration 10
--runs 1` gives a quick look.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from armonik_observe.archive.writer import ArchiveSink
from armonik_observe.fact_columns import ALL_COLUMNS, TaskFacts
from armonik_observe.pipeline import Batch
from armonik_observe.runner import tune_process
from bench import common
from bench.archive.facts import PAGE_ROWS, pages_of, rate_figures, synth_facts
from bench.archive.lag import TICK_S, lag_figures
from bench.common import BenchError, window
from bench.report import Row, other_row, parse_args, print_table, ratio_verdict, write_results

NAME = "archive_lag"
RATE = 45_000  # task rows/s: 10x ArmoniK's published peak of 4,500 tasks/s
DURATION_S = 60.0
RUNS = 3
FLUSH_INTERVAL_S = 5.0  # the sink's default
TEMPLATE_ROWS = 250_000  # distinct synthetic tasks; more than one flush interval's rows
TARGET_P99_MS = 5.0
TARGET_MAX_MS = 20.0
QUICK = {"duration": 10.0, "runs": 1, "template_rows": 60_000}
LAG_MEANS = ("how late the event loop's 1 ms timer woke up while the archive took the rows "
             "(scrapes and event ingest wait that long)")

# Columns renamed per cycle, so that every fed row is a distinct task with fresh id strings.
ID_COLUMNS = ("task_id", "initial_task_id", "payload_id")
ID_LIST_COLUMNS = ("expected_output_ids", "retry_of_ids")
STAMP_COLUMNS = ("created_at", "submitted_at", "received_at", "acquired_at", "fetched_at",
                 "started_at", "processed_at", "ended_at")


# ------------------------------------------------------------------------------- the feed


def template_pages(rows: int) -> list[TaskFacts]:
    """`rows` large-shaped detailed facts in pages, in ended_at order (as ListTasks reads)."""
    detailed, _ = synth_facts(rows)
    detailed.sort(key=lambda fact: fact.ended_at or 0)
    return pages_of(detailed)


def renamed(page: TaskFacts, cycle: int, shift_us: int) -> TaskFacts:
    """A copy of a page whose tasks are new ones: ids prefixed by the cycle, times shifted."""
    prefix = f"{cycle:08x}-"
    columns: dict[str, Any] = {}
    for name in ALL_COLUMNS:
        column = page[name]
        if name in ID_COLUMNS:
            columns[name] = [prefix + value[9:] for value in column]
        elif name in ID_LIST_COLUMNS:
            columns[name] = [tuple(prefix + v[9:] for v in ids) if ids else ids
                             for ids in column]
        elif name in STAMP_COLUMNS:
            columns[name] = np.where(column == 0, 0, column + shift_us)
        elif isinstance(column, np.ndarray):
            columns[name] = column.copy()
        else:
            columns[name] = list(column)
    return TaskFacts(columns, len(page))


def build_feed(total_rows: int, template_rows: int) -> deque[TaskFacts]:
    """Pages holding `total_rows` distinct tasks: the template, then renamed copies of it."""
    template = template_pages(min(total_rows, template_rows))
    ends = np.concatenate([page["ended_at"] for page in template])
    span_us = int(ends.max() - ends.min()) + 1
    feed: deque[TaskFacts] = deque()
    cycle, fed = 0, 0
    while fed < total_rows:
        for page in template:
            if fed >= total_rows:
                break
            feed.append(page if cycle == 0 else renamed(page, cycle, cycle * span_us))
            fed += len(page)
        cycle += 1
    return feed


# ------------------------------------------------------------------------------- the probe


class Probe:
    """A coroutine sleeping TICK_S in a loop; each wake-up's lateness is the loop's lag.

    Beside each lag, how long the loop's thread meanwhile waited for a CPU with the GIL free to
    take (Linux schedstat: run-queue wait): on a shared machine other processes' load shows up
    there, while what the archive causes (the GIL held by its threads, work on the loop) does
    not. `net` lags subtract it.
    """

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.net: list[float] = []
        self.gc_pauses: list[float] = []
        self._gc_started = 0.0
        self._stop = False
        self._task: asyncio.Task[None] | None = None
        self._started = 0.0

    def start(self) -> None:
        """Start ticking on the running loop (from the loop's thread)."""
        self._started = time.perf_counter()
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.create_task(self._run(), name="lag-probe")

    async def stop(self) -> dict[str, Any]:
        """Stop ticking; lag figures in milliseconds, raw and net of run-queue waits."""
        self._stop = True
        if self._task is not None:
            await self._task
        wall = time.perf_counter() - self._started
        gc.callbacks.remove(self._on_gc)
        figures = lag_figures(self.lags, wall)
        net = lag_figures(self.net, wall) if self.net else {}
        pauses = sorted(self.gc_pauses)
        figures.update({"net_p99_ms": net.get("p99_ms"), "net_max_ms": net.get("max_ms"),
                        "gc_passes": len(pauses),
                        "gc_max_ms": round(1000 * pauses[-1], 3) if pauses else 0.0})
        return figures

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pauses.append(time.perf_counter() - self._gc_started)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        schedstat = _open_schedstat()  # opened here: it must be the loop's thread's
        try:
            waited = _run_queue_wait(schedstat)
            while not self._stop:
                before = loop.time()
                await asyncio.sleep(TICK_S)
                lag = loop.time() - before - TICK_S
                self.lags.append(lag)
                now = _run_queue_wait(schedstat)
                if now is not None and waited is not None:
                    self.net.append(max(0.0, lag - (now - waited)))
                waited = now
        finally:
            if schedstat is not None:
                os.close(schedstat)


def _open_schedstat() -> int | None:
    """A descriptor on the calling thread's scheduler statistics; None where there are none."""
    try:
        return os.open("/proc/thread-self/schedstat", os.O_RDONLY)
    except OSError:
        return None


def _run_queue_wait(schedstat: int | None) -> float | None:
    """Seconds the thread has waited for a CPU so far (schedstat's second field)."""
    if schedstat is None:
        return None
    try:
        return int(os.pread(schedstat, 128, 0).split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


# ------------------------------------------------------------------------------- one run


async def paced_run(directory: Path, feed: deque[TaskFacts], rate: float) -> dict[str, Any]:
    """Consume the feed at `rate` rows/s into a started sink while the probe ticks; stop()."""
    sink = ArchiveSink(directory, flush_interval=FLUSH_INTERVAL_S)
    await sink.start()
    loop = asyncio.get_running_loop()
    probe = Probe()
    rows = 0
    probe.start()
    with window() as measured:
        started = loop.time()
        while feed:
            # An absolute schedule: a late page is sent at once, so lag never lowers the rate.
            due = started + rows / rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            page = feed.popleft()  # from here on the sink holds the only reference
            rows += len(page)
            sink.consume(Batch(facts=page))
            del page
    lag = await probe.stop()
    stopped = time.perf_counter()
    await sink.stop()
    stats = sink.stats
    if stats.rows_written != rows or stats.dropped_rows:
        raise BenchError(f"the sink wrote {stats.rows_written} of {rows} rows "
                         f"({stats.dropped_rows} dropped)")
    return {**rate_figures(measured, rows), "offered_rows_per_s": rate, "lag": lag,
            "segments": stats.segments_written, "bytes": stats.bytes_written,
            "final_flush_s": round(time.perf_counter() - stopped, 3)}


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """One run in this process: build the feed, then feed it paced (the JSON of `paced_run`)."""
    tune_process()  # the exporter's GC thresholds and GIL switch interval
    total = int(args.rate * args.duration)
    built = time.perf_counter()
    gc.disable()  # building only allocates: no pass could free anything
    try:
        feed = build_feed(total, args.template_rows)
    finally:
        gc.enable()
    gc.collect()
    gc.freeze()  # a minute of pages the exporter never holds: keep them out of every pass
    build_s = time.perf_counter() - built
    root = Path(tempfile.mkdtemp(prefix="bench-archive-lag-"))
    try:
        result = asyncio.run(paced_run(root / "archive", feed, args.rate))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {**result, "build_s": round(build_s, 2), "pages": total // PAGE_ROWS}


def run_child(args: argparse.Namespace) -> dict[str, Any]:
    """`worker` in a child process; its JSON."""
    cmd = [sys.executable, "-m", "bench.bench_archive_lag", "--worker",
           "--duration", str(args.duration), "--rate", str(args.rate),
           "--template-rows", str(args.template_rows)]
    report, _ = common.run_json(cmd, timeout=args.duration * 3 + 600)
    return report


# ------------------------------------------------------------------------------- report


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each run's p99 and max, their medians, and whether the medians meet the targets."""
    figures: dict[str, Any] = {}
    for key in ("p99_ms", "max_ms", "net_p99_ms", "net_max_ms"):
        values = [run["lag"][key] for run in runs if run["lag"].get(key) is not None]
        figures[key] = values
        figures.setdefault("median", {})[key] = statistics.median(values) if values else None
    median = figures["median"]
    figures["met"] = median["p99_ms"] <= TARGET_P99_MS and median["max_ms"] <= TARGET_MAX_MS
    return figures


def lag_row(label: str, value: float, net: float | None, target: float) -> Row:
    """A lower-is-better lag figure beside its target, and net of run-queue waits."""
    verdict = ratio_verdict(value, target, higher_is_better=False)
    note = "" if net is None else f"net of the loop's waits for a CPU: {net:.2f} ms"
    return Row(label, value, "ms", target, verdict, LAG_MEANS, note)


def rows_of(runs: list[dict[str, Any]], figures: dict[str, Any]) -> list[Row]:
    """The table: per run, then the medians against the targets."""
    rows: list[Row] = []
    for index, run in enumerate(runs, 1):
        lag = run["lag"]
        rows += [
            lag_row(f"run {index}: loop lag p99", lag["p99_ms"], lag["net_p99_ms"],
                    TARGET_P99_MS),
            lag_row(f"run {index}: loop lag max", lag["max_ms"], lag["net_max_ms"],
                    TARGET_MAX_MS),
            Row(f"run {index}: rows/s fed", run["rows_per_s"], "/s", run["offered_rows_per_s"],
                "", "task rows the sink consumed per second (target: the offered rate)",
                f"{run['rows']:,} rows over {run['wall_s']:.1f}s, {run['segments']} segments, "
                f"CPU {run['cpu_s'] / max(run['wall_s'], 1e-9):.2f} cores, "
                f"{lag['gc_passes']} GC passes (longest {lag['gc_max_ms']:.1f} ms)"),
            other_row(f"run {index}: other processes' CPU", run["other_cpu_share"]),
        ]
    median = figures["median"]
    rows += [
        lag_row(f"median of {len(runs)}: loop lag p99", median["p99_ms"], median["net_p99_ms"],
                TARGET_P99_MS),
        lag_row(f"median of {len(runs)}: loop lag max", median["max_ms"], median["net_max_ms"],
                TARGET_MAX_MS),
    ]
    return rows


def options() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=DURATION_S,
                        help=f"seconds of feed per run (default {DURATION_S:g})")
    parser.add_argument("--rate", type=float, default=RATE,
                        help=f"task rows per second (default {RATE})")
    parser.add_argument("--runs", type=int, default=RUNS,
                        help=f"runs, each in its own process; medians reported (default {RUNS})")
    parser.add_argument("--template-rows", type=int, default=TEMPLATE_ROWS,
                        help="distinct synthetic tasks, renamed per cycle to fill the run")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parse_args(parser, QUICK)


def main() -> None:
    args = options()
    if args.worker:
        print(json.dumps(worker(args)), flush=True)
        return
    started = time.monotonic()
    runs: list[dict[str, Any]] = []
    for index in range(args.runs):
        print(f"run {index + 1}/{args.runs}: {args.rate:,.0f} rows/s for {args.duration:g}s "
              "...", flush=True)
        try:
            runs.append(run_child(args))
        except BenchError as error:
            print(f"run {index + 1} failed: {error}", file=sys.stderr)
            sys.exit(1)
    figures = summary(runs)
    results = {"rate": args.rate, "duration_s": args.duration, "flush_interval_s":
               FLUSH_INTERVAL_S, "targets": {"p99_ms": TARGET_P99_MS, "max_ms": TARGET_MAX_MS},
               **figures, "runs": runs, "total_runtime_s": round(time.monotonic() - started, 1)}
    print()
    print_table({"event-loop lag while archiving": rows_of(runs, figures)},
                f"archive loop lag at {args.rate:,.0f} rows/s ({results['total_runtime_s']}s)")
    print(f"\nwrote {write_results(NAME, results)}")


if __name__ == "__main__":
    main()
