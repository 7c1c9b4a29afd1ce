"""Archive write throughput: facts to Parquet segments, end to end and stage by stage.

Timed: `ArchiveSink.consume` + flushes end to end (pages of 1,000 rows, a producer that lets at
most `max_buffer_rows` wait, as ListTasks pages would arrive; the sink converts one flush while
it writes the one before), `rounds` times with the loop-lag probe ticking (bench.archive.lag),
then in isolation `arrow.facts_batches` (columns to Arrow, as the writer does) and
`segments.write_segment` (Parquet zstd + fsync + rename). Rows/s on the wall clock and per
CPU-second (this process, every thread), against the issue's 500k rows/s.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from armonik_observe.archive import arrow, layout, schema, segments
from armonik_observe.archive.stages import split_batch
from armonik_observe.archive.writer import ArchiveSink
from armonik_observe.fact_columns import TaskFacts
from armonik_observe.pipeline import Batch
from bench.archive.facts import MICROS, rate_figures, row_count
from bench.archive.lag import LagProbe, lag_figures
from bench.common import BenchError, fresh_dir, window
from bench.report import Row, Run, other_row, ratio_row

TARGET_ROWS_PER_S = 500_000.0  # the issue: task rows archived per second
FLUSH_ROWS = 100_000  # the sink's default max_buffer_rows


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
    result: dict[str, Any] = {**rate_figures(measured, rows), "flush_rows": flush_rows,
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


def write_rounds(run: Run, root: Path, keep: Path, pages: list[TaskFacts],
                 rounds: int) -> dict[str, Any] | None:
    """sink_write `rounds` times (the first into `keep`, the archive later measures read), the
    median round's figures with every round's rate, and the loop lag of all rounds pooled:
    single runs swing by a quarter on this machine."""
    results = []
    for index in range(rounds):
        directory = keep if index == 0 else fresh_dir(root, "round")
        result = run.attempt(f"write_e2e_{index}", asyncio.run,
                             sink_write(directory, pages, FLUSH_ROWS, probe=True),
                             section="write", keep=False)
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
    return {"convert": rate_figures(convert, rows),
            "write": {**rate_figures(write, rows), "bytes": size,
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


def write_rows(write: dict[str, Any]) -> list[Row]:
    """Rows of the write measurement: end to end, then each stage alone."""
    e2e = write["e2e_detailed"]
    rates = e2e["rounds_rows_per_s"]
    rows = [
        ratio_row(f"write e2e detailed: rows/s (wall), median of {len(rates)}",
                  e2e["rows_per_s"], TARGET_ROWS_PER_S, "/s",
                  means="detailed task rows archived per second: consume() to fsynced "
                        "segments, flushes of 100k rows",
                  note=f"{e2e['rows']:,} rows; rounds "
                       + ", ".join(f"{rate / 1000:.0f}k" for rate in rates)),
        ratio_row("write e2e detailed: rows/CPU-s", e2e["rows_per_cpu_s"], TARGET_ROWS_PER_S,
                  "/s", means="the same per CPU-second of this process, every thread",
                  note=f"CPU {e2e['cpu_s']:.2f}s, {e2e['segments']} segments"),
        other_row("write e2e detailed: other processes' CPU", e2e["other_cpu_share"]),
    ]
    if "e2e_summary" in write:
        rows += _summary_rows(write["e2e_summary"])
    if "alone_detailed" in write:
        rows += _alone_rows(write["alone_detailed"])
    return rows


def _summary_rows(summary: dict[str, Any]) -> list[Row]:
    return [
        ratio_row("write e2e summary: rows/s (wall)", summary["rows_per_s"], TARGET_ROWS_PER_S,
                  "/s", means="the same for summary facts (ListTasks, no lists)",
                  note=f"CPU {summary['cpu_s']:.2f}s"),
        ratio_row("write e2e summary: rows/CPU-s", summary["rows_per_cpu_s"],
                  TARGET_ROWS_PER_S, "/s", means="summary rows per CPU-second"),
    ]


def _alone_rows(alone: dict[str, Any]) -> list[Row]:
    convert, parquet = alone["convert"], alone["write"]
    return [
        ratio_row("facts to Arrow alone: rows/s", convert["rows_per_s"], TARGET_ROWS_PER_S,
                  "/s", means="arrow.facts_batches alone: columns to Arrow record batches",
                  note=f"{convert['us_per_row']:.2f} us/row, CPU {convert['cpu_s']:.2f}s"),
        ratio_row("write_segment alone: rows/s", parquet["rows_per_s"], TARGET_ROWS_PER_S,
                  "/s", means="segments.write_segment alone: Parquet zstd, fsync, rename",
                  note=f"{parquet['mb_per_s']:g} MB/s out, CPU {parquet['cpu_s']:.2f}s"),
        other_row("to Arrow + write alone: other processes' CPU",
                  max(convert["other_cpu_share"], parquet["other_cpu_share"])),
    ]
