"""Columns of Python values to Arrow arrays, in C when the accelerator is built.

pyarrow converts Python values one at a time at about 50 ns each (str), 50 to 130 ns a row for
lists; a task row holds some twenty of them, which made conversion, not Parquet, the archive's
bound. `_buffers` (C) lays the values out as Arrow buffers at a few ns each. Where it could not
be compiled, the same functions fall back to pyarrow: same arrays, slower.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

import pyarrow as pa

from armonik_observe.archive.schema import STRINGS

try:
    from armonik_observe.archive import _buffers
except ImportError:  # not compiled on this machine: pyarrow converts instead
    _buffers = None  # type: ignore[assignment]

# A column in parts (pages of rows): converted as one, never concatenated as Python lists first.
Parts = list[list[Any]]


def accelerated() -> bool:
    """Whether the C conversions are in use."""
    return _buffers is not None


def strings(parts: Parts) -> pa.Array:
    """A utf8 array of the parts' str values (TypeError for anything else)."""
    if _buffers is None:
        return _checked(pa.array(_joined(parts), pa.string()))
    offsets, data = _buffers.utf8(parts)
    return pa.Array.from_buffers(pa.string(), len(offsets) // 4 - 1,
                                 [None, pa.py_buffer(offsets), pa.py_buffer(data)], null_count=0)


def string_lists(parts: Parts) -> pa.Array:
    """A list<utf8> array of tuples (or lists) of str, None for a null row."""
    if _buffers is None:
        return pa.array(_joined(parts), STRINGS)
    validity, offsets, value_offsets, data, nulls = _buffers.utf8_lists(parts)
    items = pa.Array.from_buffers(pa.string(), len(value_offsets) // 4 - 1,
                                  [None, pa.py_buffer(value_offsets), pa.py_buffer(data)],
                                  null_count=0)
    return pa.Array.from_buffers(
        STRINGS, len(offsets) // 4 - 1,
        [None if validity is None else pa.py_buffer(validity), pa.py_buffer(offsets)],
        null_count=nulls, children=[items])


def repeated(parts: Parts, type_: pa.DataType) -> pa.Array:
    """Values that mostly repeat (a session's task options), each distinct one converted once.

    pyarrow converts a map at about 0.7 us a row; here only the distinct values are converted,
    then taken by index.
    """
    if _buffers is None:
        index: dict[Any, int] = {}
        positions = pa.array([index.setdefault(value, len(index)) for value in _joined(parts)],
                             pa.int32())
        distinct = list(index)
    else:
        raw, distinct = _buffers.indices(parts)
        positions = pa.Array.from_buffers(pa.int32(), len(raw) // 4, [None, pa.py_buffer(raw)],
                                          null_count=0)
    return pa.array(distinct, type_).take(positions)


def _joined(parts: Parts) -> list[Any]:
    if not isinstance(parts, list) or not all(isinstance(part, list) for part in parts):
        raise TypeError("expected a list of lists")  # as the C functions say
    return list(chain.from_iterable(parts))


def _checked(array: pa.Array) -> pa.Array:
    """pyarrow takes None as null where the C path refuses it: refuse it here too."""
    if array.null_count:
        raise TypeError("expected str, got NoneType")
    return array
