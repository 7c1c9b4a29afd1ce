"""The producer of each result seen so far, batch after batch, by lineage.py's one rule.

Live, a task's data dependencies were produced by tasks that ended earlier (in this batch or an
earlier one): each batch goes through `lineage.producers` together with the producers already
known for its results, so the last task to expect a result wins across batches exactly as it
would over the whole session. The most recent `limit` results are kept.
"""

from __future__ import annotations

from collections import OrderedDict
from itertools import chain

import numpy as np
import polars as pl

from armonik_observe.fact_columns import TaskFacts
from armonik_observe.lineage import producers

LIMIT = 1_000_000
_SCHEMA = pl.Schema([("task_id", pl.String()), ("created_at", pl.Int64()),
                     ("expected_output_ids", pl.List(pl.String()))])


class LiveProducers:
    """result id -> the task that produces it, for the results of the facts seen so far."""

    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        self._known: OrderedDict[str, tuple[str, int]] = OrderedDict()  # -> (task, created_at)

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
        frame = pl.DataFrame({
            "task_id": [*facts["task_id"], *(row[0] for row in known)],
            "created_at": np.concatenate([np.asarray(facts["created_at"], np.int64),
                                          np.array([row[1] for row in known], np.int64)]),
            "expected_output_ids": [*outputs, *(row[2] for row in known)],
        }, schema=_SCHEMA)
        created = dict(zip(frame["task_id"].to_list(), frame["created_at"].to_list(),
                           strict=True))
        for result, task in producers(frame.lazy()).collect().iter_rows():
            self._known[result] = (task, created[task])
            self._known.move_to_end(result)
        while len(self._known) > self._limit:
            self._known.popitem(last=False)
