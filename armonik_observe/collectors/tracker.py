"""In-flight tasks seen on the event streams: a compact last status per task.

The streams deliver at least once and out of order: a task's status can repeat, arrive before
its NEW_TASK, or go backwards. The tracker keeps the furthest status seen so that only real
progress counts as a transition, and forgets a task once it has ended (its facts then come from
ListTasks). State per task is one dict entry: the id string and a packed int (status rank, status
number and the exporter second it was first seen in that status).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from armonik_observe.model import TASK_STATUS_RANK, TERMINAL_TASK_STATUSES, TaskStatus

_STATUS_BITS = 5
_RANK_SHIFT = _STATUS_BITS
_SINCE_SHIFT = 9
_NAMES = {status.name: status for status in TaskStatus}


@dataclass(frozen=True, slots=True)
class Progress:
    """What one status report did to the tracker."""

    advanced: bool  # a real transition: count it
    reason: str = ""  # why not, when it did not ("duplicate", "regression", "capacity")


ADVANCED = Progress(True)
DUPLICATE = Progress(False, "duplicate")
REGRESSION = Progress(False, "regression")
FULL = Progress(False, "capacity")


class TaskTracker:
    """Last status per in-flight task, with a cap on how many it holds."""

    def __init__(self, *, capacity: int = 2_000_000) -> None:
        self.capacity = capacity
        self._tasks: dict[str, int] = {}
        self.dropped: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._tasks)

    def report(self, task_id: str, status_name: str, now_s: int) -> Progress:
        """Record that a task was seen in a status; tell whether that is progress."""
        status = _NAMES.get(status_name)
        if status is None:  # an unknown status number: count it, track nothing
            return ADVANCED
        rank = TASK_STATUS_RANK[status]
        packed = self._tasks.get(task_id)
        if packed is not None:
            old_rank = (packed >> _RANK_SHIFT) & 0xF
            if packed & 0x1F == status:
                return self._drop(DUPLICATE)
            if rank < old_rank:
                return self._drop(REGRESSION)
        elif len(self._tasks) >= self.capacity and status not in TERMINAL_TASK_STATUSES:
            return self._drop(FULL)
        if status in TERMINAL_TASK_STATUSES:
            self._tasks.pop(task_id, None)  # finished tasks are evicted
        else:
            self._tasks[task_id] = (now_s << _SINCE_SHIFT) | (rank << _RANK_SHIFT) | status
        return ADVANCED

    def _drop(self, progress: Progress) -> Progress:
        self.dropped[progress.reason] += 1
        return progress

    def status_of(self, task_id: str) -> TaskStatus | None:
        """The furthest status seen for an in-flight task."""
        packed = self._tasks.get(task_id)
        return None if packed is None else TaskStatus(packed & 0x1F)

    def forget(self, task_ids: list[str]) -> None:
        """Drop tasks, e.g. those of a session no longer followed."""
        for task_id in task_ids:
            self._tasks.pop(task_id, None)

    def older_than(self, limit_s: int, now_s: int) -> Counter[TaskStatus]:
        """Count in-flight tasks in the same status for more than `limit_s` seconds."""
        horizon = now_s - limit_s
        stuck: Counter[TaskStatus] = Counter()
        for packed in self._tasks.values():
            if packed >> _SINCE_SHIFT < horizon:
                stuck[TaskStatus(packed & 0x1F)] += 1
        return stuck
