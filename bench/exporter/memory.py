"""Memory: tracemalloc over a TaskTracker holding `tasks` in-flight tasks, id strings included;
and what the same tasks cost once ended and remembered for duplicates."""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc
import uuid
from typing import Any

from armonik_observe.collectors.tracker import Budget, TaskTracker
from bench.common import BenchError
from bench.report import Row, info_row, ratio_row

TARGET_BYTES_PER_TASK = 300.0


def measure_memory(tasks: int) -> dict[str, Any]:
    """Bytes per in-flight task of a TaskTracker, id strings included (tracemalloc); then what
    the same tasks cost once ended (ids kept a while to recognise late duplicates)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        # Ids as the stream hands them over: one fresh 36-character str per task.
        ids = [str(uuid.UUID(int=(i * 0x9E3779B97F4A7C15) % (1 << 128), version=4))
               for i in range(tasks)]
        with_ids = tracemalloc.get_traced_memory()[0]
        list_bytes = sys.getsizeof(ids)
        tracker = TaskTracker(Budget())
        now = int(time.time())
        for task_id in ids:
            tracker.report(task_id, "CREATING", now, True)
            tracker.report(task_id, "SUBMITTED", now + 1)
        gc.collect()
        in_flight = tracemalloc.get_traced_memory()[0]
        tracked = len(tracker)
        for task_id in ids:
            tracker.report(task_id, "COMPLETED", now + 2)
        gc.collect()
        ended = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    if tracked != tasks:
        raise BenchError(f"tracker held {tracked} tasks, expected {tasks}")
    remembered = sum(1 for t in ids[-1000:] if tracker.report(t, "COMPLETED", now + 2).reason
                     == "duplicate")
    id_bytes = (with_ids - base - list_bytes) / tasks
    structure = (in_flight - with_ids) / tasks
    return {"tasks": tasks, "bytes_per_task": round(id_bytes + structure, 1),
            "id_string_bytes": round(id_bytes, 1), "tracker_bytes": round(structure, 1),
            "total_mib": round((id_bytes + structure) * tasks / 2**20, 1),
            "after_end_bytes_per_task": round(id_bytes + (ended - with_ids) / tasks, 1),
            "after_end_total_mib": round((ended - base - list_bytes) / 2**20, 1),
            "ended_ids_still_recognised_of_last_1000": remembered}


def memory_rows(memory: dict[str, Any]) -> list[Row]:
    """Rows for the tracker's memory."""
    return [
        ratio_row("memory: bytes per tracked task", memory["bytes_per_task"],
                  TARGET_BYTES_PER_TASK, "B", higher_is_better=False,
                  means=f"memory per in-flight task of a TaskTracker holding "
                        f"{memory['tasks']:,}, its id string included",
                  note=f"{memory['total_mib']:g} MiB in all"),
        info_row("memory: of which the id string", memory["id_string_bytes"], "B",
                 means="the 36-character task id str the stream hands over"),
        info_row("memory: per task once ended", memory["after_end_bytes_per_task"], "B",
                 means="what an ended task still costs (its id kept to recognise duplicates)",
                 note=f"{memory['ended_ids_still_recognised_of_last_1000']}/1000 ids kept"),
    ]
