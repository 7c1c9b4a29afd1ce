"""Columns of Python values to Arrow arrays, a column coming in parts (pages of rows).

pyarrow converts Python values one at a time (about 50 ns a str, 50 to 130 ns a row for lists,
0.7 us a map), holding the GIL for the whole call: callers convert a few thousand rows at a time
(arrow.FACTS_CONVERT_ROWS) so that the event loop's thread never waits long for it.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

import pyarrow as pa

from armonik_observe.archive.schema import STRINGS

# A column in parts (pages of rows): converted as one array.
Parts = list[list[Any]]


def strings(parts: Parts) -> pa.Array:
    """A utf8 array of the parts' str values (TypeError for anything else, None included)."""
    array = pa.array(_joined(parts), pa.string())
    if array.null_count:  # pyarrow takes None as null: a None here is a bug upstream
        raise TypeError("expected str, got NoneType")
    return array


def string_lists(parts: Parts) -> pa.Array:
    """A list<utf8> array of tuples (or lists) of str, None for a null row."""
    return pa.array(_joined(parts), STRINGS)


def repeated(parts: Parts, type_: pa.DataType) -> pa.Array:
    """Values that mostly repeat (a session's task options), each distinct one converted once,
    then taken by index: pyarrow converts a map at about 0.7 us a row."""
    index: dict[Any, int] = {}
    positions = pa.array([index.setdefault(value, len(index)) for value in _joined(parts)],
                         pa.int32())
    return pa.array(list(index), type_).take(positions)


def _joined(parts: Parts) -> list[Any]:
    # A flat list of str would be joined character by character: refuse it.
    if not isinstance(parts, list) or not all(isinstance(part, list) for part in parts):
        raise TypeError("expected a list of lists")
    return list(chain.from_iterable(parts))
