"""Buffered rows to Arrow batches of a table's schema: records (events, polls) and pages of
task facts (columns), in slices short enough that no pyarrow call holds the GIL for long.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import chain, repeat
from operator import attrgetter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from armonik_observe.archive import columns
from armonik_observe.archive.schema import (
    DAY,
    OBSERVED,
    OPTIONS,
    STRINGS,
    TASKS,
    TIMESTAMP,
    Column,
    TableSpec,
)
from armonik_observe.fact_columns import TIME_COLUMNS, Micros, TaskFacts

# -- records ---------------------------------------------------------------------------------

# Rows converted per pyarrow call: each call holds the GIL throughout, so a small slice keeps the
# event loop's thread from waiting long on a conversion running in a worker thread.
SLICE_ROWS = 4096
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Records = tuple[int, Sequence[Any]]  # (observed_at in epoch microseconds, records seen then)


def partition_function(table: TableSpec) -> Callable[[Any], str]:
    """How to get a record's partition value: its session id, or the UTC day of observed_at."""
    if table.partition_key == "session_id":
        return attrgetter("session_id")
    return lambda record: utc_day(record.observed_at)


def utc_day(micros: int) -> str:
    """The UTC day of an epoch-microsecond time, as YYYY-MM-DD."""
    return (_EPOCH + timedelta(microseconds=micros)).date().isoformat()


def to_arrow(table: TableSpec, chunks: Sequence[Records]) -> pa.Table:
    """Convert buffered records to an Arrow table of the table's schema."""
    batches = [_batch(table, records, observed) for records, observed in _slices(table, chunks)]
    return pa.Table.from_batches(batches, schema=table.schema)


def _slices(table: TableSpec, chunks: Sequence[Records]) -> Iterator[tuple[list[Any], list[int]]]:
    # Bounded lists, never one list of every record: each young list is walked by every GC pass.
    records: list[Any] = []
    observed: list[int] = []
    for seen, rows in chunks:
        rows = table.explode(rows) if table.explode else rows
        for start in range(0, len(rows), SLICE_ROWS):
            part = rows[start:start + SLICE_ROWS]
            records.extend(part)
            observed.extend(repeat(seen, len(part)))
            if len(records) >= SLICE_ROWS:
                yield records, observed
                records, observed = [], []
    if records:
        yield records, observed


def _batch(table: TableSpec, records: list[Any], observed: list[int]) -> pa.RecordBatch:
    arrays: dict[str, pa.Array] = {}
    for column in table.columns:
        arrays[column.name] = _array(column, records, observed, arrays)
    return pa.RecordBatch.from_arrays(list(arrays.values()), schema=table.schema)


def _array(column: Column, records: list[Any], observed: list[int],
           done: dict[str, pa.Array]) -> pa.Array:
    if column.attribute == OBSERVED:
        return pa.array(observed, TIMESTAMP)
    if column.attribute == DAY:
        return pc.cast(done["observed_at"], pa.date32())
    values = list(map(attrgetter(column.attribute), records))
    if column.enum_name:
        values = [getattr(v, "name", f"UNKNOWN_{v}") for v in values]
    if column.micros_to_seconds:
        return pc.divide(pa.array(values, pa.int64()).cast(pa.float64()), 1_000_000.0)
    return pa.array(values, column.type)


# -- task facts ------------------------------------------------------------------------------

# Rows converted per call when task facts become Arrow: pages are merged up to this many, since
# each pyarrow call costs ~10 us more whatever its size (1,000 rows: 3.8 us/row; 4,096: 2.6),
# and no further, since a call holds the GIL throughout (~0.3 ms for 4,096 ids; maps and lists
# take longer), and the event loop's thread waits for it.
FACTS_CONVERT_ROWS = 4096


def facts_batches(pages: list[tuple[int, TaskFacts]],
                  rows: int = FACTS_CONVERT_ROWS) -> Iterator[pa.RecordBatch]:
    """Pages of complete task facts, each with the time the sink took it, as tasks batches.

    The pages are taken out of the list, last first."""
    pending: list[tuple[int, TaskFacts]] = []
    size = 0
    while pages:  # taken out as they go: each merge frees its pages once converted
        observed, page = pages.pop()
        pending.append((observed, page))
        size += len(page)
        if size >= rows:
            yield _facts_batch(pending)
            _free(pending)
            size = 0
    if pending:
        yield _facts_batch(pending)
        _free(pending)


def _free(pages: list[tuple[int, TaskFacts]]) -> None:
    """Drop pages one at a time: freeing many in one call would hold the GIL for that long."""
    while pages:
        pages.pop()


def _facts_batch(pages: list[tuple[int, TaskFacts]]) -> pa.RecordBatch:
    facts = [page for _, page in pages]
    if not all(page.complete for page in facts):
        raise ValueError("the tasks table needs complete (detailed) task facts")
    observed = np.repeat(np.array([seen for seen, _ in pages], np.int64),
                         [len(page) for page in facts])
    arrays = [_fact_array(column, facts, observed) for column in TASKS.columns]
    return pa.RecordBatch.from_arrays(arrays, schema=TASKS.schema)


def _fact_array(column: Column, pages: list[TaskFacts], observed: Micros) -> pa.Array:
    """One column of the pages as one array; the pages' lists are read in place, not joined."""
    name = column.attribute
    if name == OBSERVED:
        return pa.array(observed, pa.int64()).view(TIMESTAMP)
    if name in TIME_COLUMNS:  # microseconds, 0 when unset
        micros = np.concatenate([page[name] for page in pages])
        unset = micros == 0
        if column.micros_to_seconds:  # numpy divides 6x faster than pc.divide's call
            return pa.array(micros / 1_000_000.0, pa.float64(), mask=unset)
        # int64 first: pyarrow's masked numpy-to-timestamp path is 2-3x slower
        return pa.array(micros, pa.int64(), mask=unset).view(TIMESTAMP)
    parts = [page[name] for page in pages]
    if column.type == OPTIONS:
        return columns.repeated(parts, column.type)
    if column.type == STRINGS:
        return columns.string_lists(parts)
    if column.type == pa.string():
        return columns.strings(parts)
    if column.type == pa.int32():  # task options: numpy reads Python ints faster than pyarrow
        return pa.array(np.fromiter(chain.from_iterable(parts), np.int32, len(observed)))
    return pa.array(list(chain.from_iterable(parts)), column.type)
