"""The ended index: tasks in the order they ended, the stand-in for a database index on ended_at.

Simulated time never goes back, so the order of ends is the order of `ended_at`: the index is
an append-only list searched by bisection. Retention removes the oldest ends first, which is
the front of the list; tasks of deleted sessions stay indexed (they end before the deletion)
but are counted out until they expire.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Container

from armonik_observe.simulator.records import SimTask


def _ended_at(task: SimTask | None) -> int:
    return 0 if task is None else task.ended_at or 0


class EndedIndex:
    """Ended tasks, oldest end first."""

    def __init__(self) -> None:
        # Entries before `_head` have expired (None); they are cut off in bulk, so that removing
        # the oldest end costs O(1) amortised.
        self._tasks: list[SimTask | None] = []
        self._head = 0
        self._deleted: list[int] = []  # sorted ended_at of indexed tasks whose session is deleted

    def __len__(self) -> int:
        """Tasks indexed, deleted sessions' included."""
        return len(self._tasks) - self._head

    def append(self, task: SimTask) -> None:
        """Index a task that has just ended."""
        self._tasks.append(task)

    def mark_deleted(self, task: SimTask) -> None:
        """Count out an indexed task whose session was deleted."""
        bisect.insort(self._deleted, _ended_at(task))

    def oldest(self) -> SimTask | None:
        """The task that ended first, if any."""
        return self._tasks[self._head] if self._head < len(self._tasks) else None

    def pop_oldest(self, deleted: bool) -> None:
        """Remove the task that ended first (`deleted`: its session was deleted)."""
        task = self._tasks[self._head]
        self._tasks[self._head] = None
        self._head += 1
        if deleted:
            del self._deleted[bisect.bisect_left(self._deleted, _ended_at(task))]
        if self._head * 2 >= len(self._tasks):
            del self._tasks[: self._head]
            self._head = 0

    def since(
        self, since_us: int, page: int, page_size: int, held: Container[str]
    ) -> tuple[list[SimTask], int]:
        """One page of the tasks in `held` ended at or after `since_us`, and their total."""
        tasks = self._tasks
        start = bisect.bisect_left(tasks, since_us, lo=self._head, key=_ended_at)
        deleted = len(self._deleted) - bisect.bisect_left(self._deleted, since_us)
        skip, found = page * page_size, list[SimTask]()
        for task in itertools.islice(tasks, start, None):
            if len(found) >= page_size:
                break
            if task is None or task.task_id not in held:
                continue  # its session was deleted
            if skip:
                skip -= 1
            else:
                found.append(task)
        return found, len(tasks) - start - deleted
