"""Task facts column by column: how a ListTasks page travels from the collector to the sinks.

A page holds a thousand tasks. Sinks fold them with numpy (metrics) or hand them to Arrow (the
archive), so they are kept as columns named after `TaskFact`'s fields, never as one object per
task. Times and durations are int64 numpy arrays of microseconds where 0 means unset (the wire
does not tell an unset Timestamp from the epoch either); the other columns are lists.

Without the archive only `CORE_COLUMNS` are read from the wire: what the metrics and the stream
lag need, at a third of the cost of every field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from itertools import compress
from typing import Any

import numpy as np
import numpy.typing as npt

from armonik_observe.model import TaskFact

Micros = npt.NDArray[np.int64]

TIME_COLUMNS = frozenset({
    "created_at", "submitted_at", "received_at", "acquired_at", "fetched_at", "started_at",
    "processed_at", "ended_at", "creation_to_end", "processing_to_end", "received_to_end",
    "max_duration",
})
ALL_COLUMNS = tuple(f.name for f in fields(TaskFact))
CORE_COLUMNS = ("task_id", "session_id", "status", "partition_id", "application_name",
                "submitted_at", "received_at", "started_at", "processed_at", "ended_at",
                "creation_to_end", "processing_to_end", "received_to_end")


class TaskFacts:
    """Task facts, one column per TaskFact field; `complete` when every field is there."""

    __slots__ = ("_columns", "_size")

    def __init__(self, columns: Mapping[str, Sequence[Any] | Micros], size: int) -> None:
        self._columns = dict(columns)
        self._size = size

    @classmethod
    def empty(cls) -> TaskFacts:
        """No facts."""
        return cls({}, 0)

    @classmethod
    def of(cls, records: Sequence[TaskFact]) -> TaskFacts:
        """Columns from records (tests, tools): the inverse of `records()`."""
        columns: dict[str, Sequence[Any] | Micros] = {}
        for name in ALL_COLUMNS:
            values = [getattr(record, name) for record in records]
            columns[name] = (np.array([v or 0 for v in values], np.int64)
                             if name in TIME_COLUMNS else values)
        return cls(columns, len(records))

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def __getitem__(self, name: str) -> Any:
        """One column (a list, or a numpy array of microseconds for times)."""
        return self._columns[name]

    def __contains__(self, name: object) -> bool:
        return name in self._columns

    @property
    def complete(self) -> bool:
        """Whether every TaskFact field has a column."""
        return all(name in self._columns for name in ALL_COLUMNS)

    def micros(self, name: str) -> list[int | None]:
        """A time column as a list of microseconds, None where unset."""
        return [v or None for v in np.asarray(self._columns[name]).tolist()]

    def take(self, keep: npt.NDArray[np.bool_]) -> TaskFacts:
        """The facts where `keep` is true."""
        columns: dict[str, Sequence[Any] | Micros] = {}
        for name, column in self._columns.items():
            columns[name] = (column[keep] if isinstance(column, np.ndarray)
                             else list(compress(column, keep.tolist())))
        return TaskFacts(columns, int(keep.sum()))

    def records(self) -> list[TaskFact]:
        """One TaskFact per row; only complete facts have every field."""
        if not self.complete:
            missing = [name for name in ALL_COLUMNS if name not in self._columns]
            raise ValueError(f"these task facts lack {', '.join(missing)}")
        columns = [self.micros(name) if name in TIME_COLUMNS else self._columns[name]
                   for name in ALL_COLUMNS]
        return [TaskFact(*row) for row in zip(*columns, strict=True)]

