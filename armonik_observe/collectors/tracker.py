"""In-flight tasks seen on the event streams: a compact last status per task.

The streams deliver at least once and out of order: a task's status can repeat, arrive before
its NEW_TASK, or go backwards. The tracker keeps the furthest status seen so that only real
progress counts as a transition, and forgets a task once it has ended (its facts then come from
ListTasks). State per task is one dict entry: the id string and a packed int (status rank, status
number and the exporter second it was first seen in that status).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from armonik_observe.model import TASK_STATUS_RANK, TERMINAL_TASK_STATUSES, TaskStatus

_STATUS_BITS = 5
_RANK_SHIFT = _STATUS_BITS
_SINCE_SHIFT = 9
_NAMES = {status.name: status for status in TaskStatus}
# Ended ids are remembered this long: long enough for a late duplicate of the final status
# (seconds), and for the task facts of the same ends to be matched against the stream (event
# lag: the facts come a facts interval, 5 s, after the end). The longer, the more it holds:
# 60 s of ends is 60,000 ids at 1,000 ends/s (about 6 MB).
RECENT_END_SECONDS = 60
RECENT_END_LIMIT = 200_000  # per session, whatever the end rate


@dataclass(frozen=True, slots=True)
class Progress:
    """What one status report did to the tracker."""

    advanced: bool  # a real transition: count it
    reason: str = ""  # why not, when it did not ("duplicate", "regression", "capacity")


ADVANCED = Progress(True)
DUPLICATE = Progress(False, "duplicate")
REGRESSION = Progress(False, "regression")
FULL = Progress(False, "capacity")
REPLAY = Progress(False, "replay")
# Every reason a report is dropped for: each is exported from the start, at 0.
DROP_REASONS = tuple(p.reason for p in (DUPLICATE, REGRESSION, FULL, REPLAY))


@dataclass(slots=True)
class Budget:
    """How many tasks every tracker together may hold, and how many it holds."""

    limit: int = 2_000_000
    used: int = 0
    dropped: Counter[str] = field(default_factory=lambda: Counter(dict.fromkeys(DROP_REASONS, 0)))


class TaskTracker:
    """Last status per in-flight task of one session, drawing on a shared budget."""

    def __init__(self, budget: Budget | None = None) -> None:
        self.budget = budget or Budget()
        self._tasks: dict[str, int] = {}
        # Recently ended tasks -> second seen, oldest first. Keyed by the id's hash (64 bits:
        # a collision in 120 s of ends is vanishingly rare), not the id: a busy session keeps
        # 100k of them, and the id strings would double what they cost.
        self._ended: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def report(self, task_id: str, status_name: str, now_s: int, new: bool = False) -> Progress:
        """Record that a task was seen in a status; tell whether that is progress.

        `new` marks a NEW_TASK: for a task not tracked yet it is most likely the snapshot a
        server replays on subscription, so it sets the baseline and counts only as CREATING.
        """
        status = _NAMES.get(status_name)
        if status is None:  # an unknown status number: count it, track nothing
            return ADVANCED
        rank = TASK_STATUS_RANK[status]
        packed = self._tasks.get(task_id)
        if packed is None and hash(task_id) in self._ended:
            return self._drop(DUPLICATE)  # anything after the end is late news
        if packed is None and new and status != TaskStatus.CREATING:
            if status in TERMINAL_TASK_STATUSES:
                # An end the stream delivered, if only in its snapshot: later copies are late
                # news, and the stream is not behind on it.
                self._remember_end(task_id, now_s)
            else:
                self._track(task_id, None, status, rank, now_s)
            return self._drop(REPLAY)
        if packed is not None:
            old_rank = (packed >> _RANK_SHIFT) & 0xF
            if packed & 0x1F == status:
                return self._drop(DUPLICATE)
            if rank < old_rank:
                return self._drop(REGRESSION)
        if status in TERMINAL_TASK_STATUSES:
            return self._end(task_id, packed, now_s)
        self._track(task_id, packed, status, rank, now_s)
        return ADVANCED

    def _end(self, task_id: str, packed: int | None, now_s: int) -> Progress:
        if hash(task_id) in self._ended:
            return self._drop(DUPLICATE)
        if packed is not None:  # finished tasks are evicted...
            del self._tasks[task_id]
            self.budget.used -= 1
        # ...but remembered a while, so a repeated final status does not count twice.
        self._remember_end(task_id, now_s)
        return ADVANCED

    def _remember_end(self, task_id: str, now_s: int) -> None:
        ended = self._ended
        ended[hash(task_id)] = now_s
        horizon = now_s - RECENT_END_SECONDS
        while ended and (len(ended) > RECENT_END_LIMIT or next(iter(ended.values())) < horizon):
            del ended[next(iter(ended))]

    def recent_ends(self) -> int:
        """Ended ids remembered (RECENT_END_SECONDS, at most RECENT_END_LIMIT)."""
        return len(self._ended)

    def has_ended(self, task_id: str) -> bool:
        """True when the stream delivered the task's final status recently (or replayed it)."""
        return hash(task_id) in self._ended

    def _track(
        self, task_id: str, packed: int | None, status: TaskStatus, rank: int, now_s: int
    ) -> None:
        if packed is None:
            if self.budget.used >= self.budget.limit:
                self._drop(FULL)
                return
            self.budget.used += 1
        self._tasks[task_id] = (now_s << _SINCE_SHIFT) | (rank << _RANK_SHIFT) | status

    def _drop(self, progress: Progress) -> Progress:
        self.budget.dropped[progress.reason] += 1
        return progress

    def status_of(self, task_id: str) -> TaskStatus | None:
        """The furthest status seen for an in-flight task."""
        packed = self._tasks.get(task_id)
        return None if packed is None else TaskStatus(packed & 0x1F)

    def clear(self) -> None:
        """Forget every task, e.g. when the session is no longer followed."""
        self.budget.used -= len(self._tasks)
        self._tasks.clear()
        self._ended.clear()

    def older_than(self, limit_s: int, now_s: int,
                   limits_s: Mapping[TaskStatus, int] | None = None) -> Counter[TaskStatus]:
        """Count in-flight tasks in the same status for more than `limit_s` seconds, or for
        more than their status's own limit in `limits_s`."""
        horizons = [now_s - limit_s] * (0x1F + 1)
        for status, limit in (limits_s or {}).items():
            horizons[status] = now_s - limit
        stuck: Counter[TaskStatus] = Counter()
        for packed in self._tasks.values():
            if packed >> _SINCE_SHIFT < horizons[packed & 0x1F]:
                stuck[TaskStatus(packed & 0x1F)] += 1
        return stuck
