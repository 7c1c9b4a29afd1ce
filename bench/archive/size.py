"""Bytes per archived task: the tasks segments' bytes / rows, as written (100k-row flushes, and
10k-row flushes as a 5 s flush interval at 2k facts/s gives) and after `maintenance.compact`
(which also deduplicates)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from armonik_observe.archive import maintenance
from armonik_observe.archive import open as open_archive
from bench.common import window
from bench.report import Row, info_row

SMALL_FLUSH_ROWS = 10_000  # a 5 s flush interval at 2k facts/s
SMALL_SAMPLE_ROWS = 200_000  # rows written with small flushes (bytes/row does not need more)


def tasks_size(directory: Path) -> dict[str, Any]:
    """Files, rows and bytes of the tasks table, from segment metadata."""
    stats = open_archive(directory).stats()["tasks"]
    return {"files": stats.files, "rows": stats.rows, "bytes": stats.bytes,
            "bytes_per_row": round(stats.bytes / max(stats.rows, 1), 1)}


def compact_figures(directory: Path) -> dict[str, Any]:
    """Bytes per task before and after maintenance.compact."""
    before = tasks_size(directory)
    with window() as measured:
        report = maintenance.compact(directory)
    after = tasks_size(directory)
    return {"before": before, "after": after, "compact_wall_s": round(measured.wall, 3),
            "compact_cpu_s": round(measured.cpu, 3), "merged": report.merged,
            "written": report.written}


def bytes_rows(label: str, figures: dict[str, Any]) -> list[Row]:
    """Rows for bytes per task before and after compaction."""
    before, after = figures["before"], figures["after"]
    ratio = after["bytes_per_row"] / max(before["bytes_per_row"], 1e-9)
    return [
        info_row(f"bytes/task {label}: as written", before["bytes_per_row"], "B",
                 means="tasks segment bytes per row on disk, zstd Parquet",
                 note=f"{before['files']} segments, {before['rows']:,} rows"),
        info_row(f"bytes/task {label}: compacted", after["bytes_per_row"], "B",
                 means="the same after maintenance.compact (merged, deduplicated)",
                 note=f"x{ratio:.2f}; {after['files']} segments, "
                      f"compact {figures['compact_wall_s']:.1f}s"),
    ]
