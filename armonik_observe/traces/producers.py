"""The producer of each result seen so far, batch after batch, by lineage.py's one rule.

Live, a task's data dependencies were produced by tasks that ended earlier (in this batch or an
earlier one): each batch goes through `lineage.producers` together with the producers already
known for its results, so the last task to expect a result wins across batches exactly as it
would over the whole session. At most `limit` results are kept (the first seen go first).
"""

from __future__ import annotations

from itertools import chain

import numpy as np
import polars as pl
import pyarrow as pa

from armonik_observe.fact_columns import TaskFacts
from armonik_observe.lineage import producers

LIMIT = 1_000_000


class LiveProducers:
    """result id -> the task that produces it, for the results of the facts seen so far."""

    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        self._known: dict[str, tuple[str, int]] = {}  # -> (task, created_at)

    def __len__(self) -> int:
        return len(self._known)

    def get(self, result_id: str) -> str | None:
        """The producer of a result, if a task expecting it was seen."""
        known = self._known.get(result_id)
        return None if known is None else known[0]

    def update(self, facts: TaskFacts) -> None:
        """Take the expected outputs of detailed facts into account."""
        outputs = [list(ids or ()) for ids in facts["expected_output_ids"]]
        results = set(chain.from_iterable(outputs))
        if not results:
            return
        known = [(task, created, [result]) for result in results
                 if (found := self._known.get(result)) is not None
                 for task, created in [found]]
        # Through Arrow: Polars converts a list of Python lists element by element.
        frame = pl.from_arrow(pa.table({
            "task_id": pa.array([*facts["task_id"], *(row[0] for row in known)], pa.string()),
            "created_at": np.concatenate([np.asarray(facts["created_at"], np.int64),
                                          np.array([row[1] for row in known], np.int64)]),
            "expected_output_ids": pa.array([*outputs, *(row[2] for row in known)],
                                            pa.list_(pa.string())),
        }))
        assert isinstance(frame, pl.DataFrame)
        chosen = producers(frame.lazy()).join(
            frame.lazy().select("task_id", "created_at").unique("task_id"),
            left_on="producer_task_id", right_on="task_id", how="left").collect()
        self._known.update(zip(chosen["result_id"].to_list(),
                               zip(chosen["producer_task_id"].to_list(),
                                   chosen["created_at"].to_list(), strict=True), strict=True))
        while len(self._known) > self._limit:  # the oldest first seen go first
            del self._known[next(iter(self._known))]
