"""Columns of Python values to Arrow arrays, in C when the accelerator is built.

pyarrow converts Python values one at a time at about 50 ns each (str), 50 to 130 ns a row for
lists; a task row holds some twenty of them, which made conversion, not Parquet, the archive's
bound. `_buffers` (C) lays the values out as Arrow buffers at a few ns each. Where it could not
be compiled, the same functions fall back to pyarrow: same arrays, slower.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

try:
    from armonik_observe.archive import _buffers
except ImportError:  # not compiled on this machine: pyarrow converts instead
    _buffers = None  # type: ignore[assignment]

STRINGS = pa.list_(pa.string())


def accelerated() -> bool:
    """Whether the C conversions are in use."""
    return _buffers is not None


def strings(values: list[str]) -> pa.Array:
    """A utf8 array of str values (TypeError for anything else)."""
    if _buffers is None:
        return _checked(pa.array(values, pa.string()))
    offsets, data = _buffers.utf8(values)
    return pa.Array.from_buffers(pa.string(), len(values),
                                 [None, pa.py_buffer(offsets), pa.py_buffer(data)], null_count=0)


def string_lists(values: list[Any]) -> pa.Array:
    """A list<utf8> array of tuples (or lists) of str, None for a null row."""
    if _buffers is None:
        return pa.array(values, STRINGS)
    validity, offsets, value_offsets, data, nulls = _buffers.utf8_lists(values)
    items = pa.Array.from_buffers(pa.string(), len(value_offsets) // 4 - 1,
                                  [None, pa.py_buffer(value_offsets), pa.py_buffer(data)],
                                  null_count=0)
    return pa.Array.from_buffers(
        STRINGS, len(values),
        [None if validity is None else pa.py_buffer(validity), pa.py_buffer(offsets)],
        null_count=nulls, children=[items])


def repeated(values: list[Any], type_: pa.DataType) -> pa.Array:
    """Values that mostly repeat (a session's task options), each distinct one converted once.

    pyarrow converts a map at about 0.7 us a row; here only the distinct values are converted,
    then taken by index.
    """
    if _buffers is None:
        index: dict[Any, int] = {}
        positions = pa.array([index.setdefault(value, len(index)) for value in values],
                             pa.int32())
        distinct = list(index)
    else:
        raw, distinct = _buffers.indices(values)
        positions = pa.Array.from_buffers(pa.int32(), len(values), [None, pa.py_buffer(raw)],
                                          null_count=0)
    return pa.array(distinct, type_).take(positions)


def _checked(array: pa.Array) -> pa.Array:
    """pyarrow takes None as null where the C path refuses it: refuse it here too."""
    if array.null_count:
        raise TypeError("expected str, got NoneType")
    return array
