"""Columns of Python values to Arrow: parts (pages of rows) become one array in order, values of
another type are refused, and repeated values give the array pyarrow would.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from armonik_observe.archive import columns
from armonik_observe.archive.schema import OPTIONS

texts = st.text(max_size=40)  # every code point: ASCII, accents, emoji, NUL
option_maps = st.lists(st.tuples(st.sampled_from(["a", "b", "é"]), texts), max_size=2,
                       unique_by=lambda kv: kv[0]).map(tuple)


def in_parts(values: list[Any], cuts: list[int]) -> list[list[Any]]:
    """The values cut into consecutive parts at the given positions (empty parts included)."""
    bounds = [0, *sorted(min(cut, len(values)) for cut in cuts), len(values)]
    return [values[start:end] for start, end in pairwise(bounds)]


cuts = st.lists(st.integers(0, 60), max_size=4)


def test_parts_become_one_array_in_order() -> None:
    assert columns.strings([["a", "é"], [], ["🙂"]]).to_pylist() == ["a", "é", "🙂"]
    lists = columns.string_lists([[("a", "b")], [], [None, ["c"], ()]])
    assert lists.type == pa.list_(pa.string())
    assert lists.to_pylist() == [["a", "b"], None, ["c"], []]


@given(st.lists(option_maps, max_size=30), st.integers(0, 3), cuts)
def test_repeated_maps_equal_pyarrow(values: list[Any], runs: int, at: list[int]) -> None:
    # Runs of the very same object (as pages carry them) and equal copies (as fresh reads do).
    values = [v for value in values for v in [value] * runs + [tuple(value)]]
    array = columns.repeated(in_parts(values, at), OPTIONS)
    array.validate(full=True)
    assert array.to_pylist() == pa.array(values, OPTIONS).to_pylist()


@pytest.mark.parametrize("convert", [columns.strings, columns.string_lists])
def test_values_of_another_type_are_refused(convert: Any) -> None:
    bad: list[Any] = [["a", 3]] if convert is columns.string_lists else ["a", None]
    with pytest.raises((TypeError, pa.ArrowInvalid, pa.ArrowTypeError)):
        convert([["a"], bad])


def test_unhashable_repeated_values_are_refused() -> None:
    with pytest.raises(TypeError):
        columns.repeated([[[("a", "b")]]], OPTIONS)


@pytest.mark.parametrize("convert", [columns.strings, columns.string_lists])
def test_a_column_not_in_parts_is_refused(convert: Any) -> None:
    with pytest.raises(TypeError, match="list of lists"):
        convert(["ab", "c"])
