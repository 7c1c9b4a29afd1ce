"""Benchmark the Parquet archive: write throughput, event-loop stalls, bytes per task, queries.

One module of bench/archive/ per measurement (each docstring says how it measures), over
`--rows` (1M) synthetic task facts shaped like the `large` built-in scenario (facts):

1. Write (write): ArchiveSink end to end, `--write-rounds` times, detailed then summary facts;
   then facts to Arrow and Parquet segments alone. Rows/s against the issue's 500k rows/s.
2. Loop stalls (lag): the event loop's lateness idle, during the end-to-end write, during one
   flush of every row at once, and during 200k-row flushes with the GIL switch interval at
   5 ms then 1 ms. Everything runs under the exporter's process settings
   (runner.tune_process: GC thresholds, 1 ms switch interval).
3. Bytes per archived task (size): as written with 100k- and 10k-row flushes, and compacted.
4. Query (query): open, connect and grouped percentiles in a fresh process (DuckDB, Polars),
   on the archive as written, then compacted.
   Baseline (analytics): armonik-analytics 0.0.2 over a `--analytics-tasks` simulator slice
   against the archive of the same tasks, extrapolated to the large archive.

usage: python -m bench.bench_archive [--rows 1000000] [--write-rounds 3]
       [--analytics-tasks 50000] [--profile] [--skip-write] [--skip-lag] [--skip-bytes]
       [--skip-query] [--skip-analytics] [--keep] [--quick]
--skip-write skips the isolated conversion and write (the end-to-end write makes the archive the
other measures use); --skip-bytes also skips compaction and so the compacted query.
Writes bench/results/archive.json. Takes about a minute with the defaults (1.5 to 2 on 2 busy
cores), about 10 s with --quick. "other processes' CPU" rows say how many cores other jobs
took: above 0.2, read the per-CPU-second figures and ratios rather than the wall-clock rates.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

from armonik_observe.fact_columns import TaskFacts
from armonik_observe.runner import tune_process
from bench.archive.analytics import analytics_rows, measure_analytics
from bench.archive.facts import PAGE_ROWS, freeze_facts, pages_of, synth_facts
from bench.archive.lag import TARGET_STALL_MS, lag_figures, lag_rows, one_flush
from bench.archive.query import query_rows, run_query_worker
from bench.archive.size import SMALL_FLUSH_ROWS, SMALL_SAMPLE_ROWS, bytes_rows, compact_figures
from bench.archive.write import (
    FLUSH_ROWS,
    TARGET_ROWS_PER_S,
    convert_and_write,
    profile_convert,
    sink_write,
    write_rounds,
    write_rows,
)
from bench.common import fresh_dir, window
from bench.report import Run, other_row, parse_args

NAME = "archive"
SECTIONS = ("write", "lag", "bytes", "query", "analytics")
QUICK = {"rows": 100_000, "write_rounds": 1, "analytics_tasks": 5_000}
BYTES_LABELS = ("detailed, 100k flushes", "summary, 100k flushes", "summary, 10k flushes")


def options() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000,
                        help="task rows of the large-shaped archive (default 1000000)")
    parser.add_argument("--analytics-tasks", type=int, default=50_000,
                        help="tasks of the simulator slice the baseline pages (default 50000)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where to write the archives (default: a temporary directory)")
    parser.add_argument("--profile", action="store_true",
                        help="print a cProfile of facts_batches + write over 200k detailed rows")
    parser.add_argument("--write-rounds", type=int, default=3,
                        help="end-to-end detailed writes; the median is reported")
    parser.add_argument("--keep", action="store_true", help="keep the archives written")
    for name in SECTIONS:
        parser.add_argument(f"--skip-{name}", action="store_true")
    return parse_args(parser, QUICK)


def build_facts(args: argparse.Namespace, run: Run) -> tuple[list[TaskFacts], list[TaskFacts]]:
    """The large-shaped facts as the collector publishes them (columns, a page at a time),
    detailed and summary, built before any timing and frozen out of the collector's passes."""
    print(f"facts: building {args.rows:,} large-shaped tasks (detailed and summary) ...",
          flush=True)
    with window() as built:
        records, summary_records = freeze_facts(lambda: synth_facts(args.rows))
        detailed = freeze_facts(partial(pages_of, records))
        summary = freeze_facts(partial(pages_of, summary_records))
    run.results["facts"] = {"source": "synthetic, shaped like the large scenario "
                                      "(simulating it takes ~80 s)",
                            "detailed_rows": len(records), "build_s": round(built.wall, 2),
                            "gc_frozen": True,
                            "sessions": len({f.session_id for f in records[:: 997]}),
                            "retried": sum(1 for f in records if f.status == "RETRIED")}
    run.phase("build facts")
    return detailed, summary


def write_detailed(args: argparse.Namespace, run: Run, root: Path, large: Path,
                   detailed: list[TaskFacts], write: dict[str, Any],
                   lag: dict[str, Any]) -> bool:
    """Measure 1 on detailed facts (alone, then end to end into `large`), and the worst-case
    flush of measure 2; False when the end-to-end write failed."""
    if not args.skip_write:
        print("write: facts_batches and write_segment alone ...", flush=True)
        alone = run.attempt("write_alone", convert_and_write, fresh_dir(root, "alone"),
                            detailed, section="write", keep=False)
        shutil.rmtree(root / "alone", ignore_errors=True)
        if args.profile:
            print(profile_convert(detailed[:200_000 // PAGE_ROWS]), flush=True)
        if alone:
            write["alone_detailed"] = alone
    print(f"write: ArchiveSink end to end, detailed facts, with the lag probe, "
          f"{args.write_rounds} rounds ...", flush=True)
    e2e = write_rounds(run, root, large, detailed, args.write_rounds)
    if e2e is None:
        return False
    write["e2e_detailed"] = e2e
    lag["e2e"] = e2e.pop("lag")
    run.phase("write detailed")
    if not args.skip_lag:
        print("lag: one flush of every row at once ...", flush=True)
        worst = run.attempt("lag_one_flush", asyncio.run, one_flush(
            fresh_dir(root, "one-flush"), detailed, idle_first=True), section="lag", keep=False)
        if worst:
            del worst["lag_raw"]
            lag["idle"] = worst.pop("idle_lag")
            lag["one_flush"] = worst.pop("lag")
            lag["one_flush_write"] = worst
    run.phase("lag")
    return True


def switch_interval_lag(run: Run, root: Path, summary: list[TaskFacts],
                        lag: dict[str, Any]) -> None:
    """200k-row flushes at a 5 ms then a 1 ms GIL switch interval, alternated, twice each, and
    pooled: the machine's noise drifts within seconds."""
    print("lag: one flush of summary rows, GIL switch interval 5 ms then 1 ms ...", flush=True)
    pooled: dict[str, list[float]] = {"switch_5ms": [], "switch_1ms": []}
    walls: dict[str, float] = {"switch_5ms": 0.0, "switch_1ms": 0.0}
    for label, interval in (("switch_5ms", 0.005), ("switch_1ms", 0.001)) * 2:
        pair = run.attempt(f"lag_{label}", asyncio.run, one_flush(
            fresh_dir(root, "one-flush"), summary[:SMALL_SAMPLE_ROWS // PAGE_ROWS],
            switch_interval=interval), section="lag", keep=False)
        if pair:
            pooled[label] += pair.pop("lag_raw")
            walls[label] += pair["lag"]["wall_s"]
            lag.setdefault(f"{label}_runs", []).append(pair)
    for label, lags in pooled.items():
        if lags:
            lag[label] = lag_figures(lags, walls[label])
    run.phase("lag: switch interval")


def write_summary(args: argparse.Namespace, run: Run, root: Path, summary: list[TaskFacts],
                  write: dict[str, Any], lag: dict[str, Any]) -> None:
    """Measure 1 on summary facts, the switch-interval flushes, and measure 3's small flushes
    and compactions."""
    if not args.skip_write or not args.skip_bytes:
        print("write: ArchiveSink end to end, summary facts ...", flush=True)
        result = run.attempt("write_e2e_summary", asyncio.run,
                             sink_write(fresh_dir(root, "summary"), summary, FLUSH_ROWS,
                                        probe=False), section="write", keep=False)
        if result:
            write["e2e_summary"] = result
        run.phase("write summary")
    if not args.skip_lag:
        switch_interval_lag(run, root, summary, lag)
    shutil.rmtree(root / "one-flush", ignore_errors=True)
    if args.skip_bytes:
        return
    print("bytes: small flushes, then compaction ...", flush=True)
    small = fresh_dir(root, "small")
    asyncio.run(sink_write(small, summary[:SMALL_SAMPLE_ROWS // PAGE_ROWS], SMALL_FLUSH_ROWS,
                           False))
    # The detailed archive is compacted after its query as written (query_part).
    run.results["bytes"] = {
        label: run.attempt(f"compact {label}", compact_figures, directory, section="bytes",
                           keep=False)
        for label, directory in (("summary, 100k flushes", root / "summary"),
                                 ("summary, 10k flushes", small))
        if directory.exists()}
    run.phase("bytes: small flushes + compact summaries")


def lag_table(run: Run, lag: dict[str, Any], e2e: dict[str, Any]) -> None:
    """Measure 2's rows, idle first."""
    if "idle" in lag:
        run.add("lag", lag_rows("idle (timer noise)", lag["idle"]))
    run.add("lag", lag_rows(f"e2e write x{len(e2e['rounds_rows_per_s'])}", lag["e2e"]))
    run.add("lag", [other_row("loop lag e2e write: other processes' CPU",
                              e2e["other_cpu_share"])])
    if "one_flush" in lag:
        flush = lag["one_flush_write"]
        label = f"one {flush['rows'] // 1000}k-row flush"
        run.add("lag", lag_rows(label, lag["one_flush"]))
        run.add("lag", [other_row(f"loop lag {label}: other processes' CPU",
                                  flush["other_cpu_share"])])
    for label in ("switch_5ms", "switch_1ms"):
        if label in lag:
            runs = lag[f"{label}_runs"]
            name = f"{len(runs)}x {runs[0]['rows'] // 1000}k flush, {label.replace('_', ' ')}"
            run.add("lag", lag_rows(name, lag[label]))


def write_part(args: argparse.Namespace, run: Run, root: Path) -> Path | None:
    """Measures 1 to 3; returns the large-shaped (detailed) archive for the query."""
    detailed, summary = build_facts(args, run)
    large = fresh_dir(root, "large")
    write: dict[str, Any] = {}
    lag: dict[str, Any] = {}
    if not write_detailed(args, run, root, large, detailed, write, lag):
        return None
    del detailed
    write_summary(args, run, root, summary, write, lag)
    del summary
    gc.unfreeze()
    gc.collect()
    run.results["write"] = write
    run.results["lag"] = lag
    run.add("write", write_rows(write))
    lag_table(run, lag, write["e2e_detailed"])
    return large


def query_part(args: argparse.Namespace, run: Run, large: Path) -> None:
    """Measure 4 on the large-shaped archive as written, then (unless --skip-bytes, which skips
    its compaction) compacted."""
    print("query: fresh process, archive as written ...", flush=True)
    written = run.attempt("query_as_written", run_query_worker, large, section="query")
    if written:
        run.add("query", query_rows("as written", written))
    run.phase("query as written")
    if args.skip_bytes:
        return
    print("bytes: compacting the detailed archive ...", flush=True)
    figures = run.attempt("compact detailed", compact_figures, large, section="bytes",
                          keep=False)
    if not figures:
        return
    run.results.setdefault("bytes", {})["detailed, 100k flushes"] = figures
    print("query: fresh process, compacted archive ...", flush=True)
    compacted = run.attempt("query_compacted", run_query_worker, large, section="query")
    if compacted:
        run.add("query", query_rows("compacted", compacted))
    run.phase("compact + query compacted")


def measure_all(args: argparse.Namespace, run: Run, root: Path) -> None:
    """Every measurement not skipped, in order: write, lag and bytes, query, analytics."""
    large = None
    if not (args.skip_write and args.skip_lag and args.skip_bytes and args.skip_query):
        large = write_part(args, run, root)
    if large is not None and not args.skip_query:
        query_part(args, run, large)
    bytes_figures = run.results.get("bytes", {})
    for label in BYTES_LABELS:
        if bytes_figures.get(label):
            run.add("bytes", bytes_rows(label, bytes_figures[label]))
    if not args.skip_analytics:
        analytics = run.attempt("analytics", measure_analytics, args.analytics_tasks, root,
                                section="analytics")
        if analytics:
            run.add("analytics", analytics_rows(analytics, run.results.get("query_as_written")))
        run.phase("analytics baseline")


def main() -> None:
    args = options()
    tune_process()  # measure under the exporter's own process settings
    run = Run(NAME, "archive benchmark", SECTIONS)
    run.results.update({"rows": args.rows, "target_rows_per_s": TARGET_ROWS_PER_S,
                        "target_stall_ms": TARGET_STALL_MS, "page_rows": PAGE_ROWS,
                        "flush_rows": FLUSH_ROWS, "cores": os.cpu_count()})
    owned = args.work_dir is None
    root = Path(tempfile.mkdtemp(prefix="bench-archive-")) if owned else args.work_dir
    root.mkdir(parents=True, exist_ok=True)
    try:
        measure_all(args, run, root)
    finally:
        if owned and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if owned and args.keep:
        print(f"archives kept in {root}")
    run.finish()


if __name__ == "__main__":
    main()
