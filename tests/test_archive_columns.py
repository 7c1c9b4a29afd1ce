"""Columns of Python values to Arrow: the C accelerator gives exactly pyarrow's arrays, refuses
what pyarrow's path refuses, and is the path in use here (the benchmarks measure it).

A column comes in parts (pages of rows), converted as one array.
"""

from __future__ import annotations

import shutil
import sysconfig
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from armonik_observe.archive import columns
from armonik_observe.archive.schema import OPTIONS

texts = st.text(max_size=40)  # every code point: ASCII, accents, emoji, NUL
string_lists = st.lists(st.none() | st.lists(texts, max_size=4).map(tuple) | st.lists(texts,
                                                                                     max_size=3))
option_maps = st.lists(st.tuples(st.sampled_from(["a", "b", "é"]), texts), max_size=2,
                       unique_by=lambda kv: kv[0]).map(tuple)


@pytest.fixture
def pure_pyarrow(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The fallback path, as on a machine where the C module could not be built."""
    monkeypatch.setattr(columns, "_buffers", None)
    yield


@pytest.fixture(params=["native", "pure_pyarrow"])
def either_path(request: pytest.FixtureRequest) -> None:
    """Each test runs on the C path, then on the fallback."""
    if request.param == "pure_pyarrow":
        request.getfixturevalue("pure_pyarrow")


def test_the_accelerator_is_in_use_wherever_a_compiler_could_build_it() -> None:
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    buildable = shutil.which(compiler) is not None
    assert columns.accelerated() == buildable, (
        f"C compiler {compiler!r} {'found' if buildable else 'missing'}, yet the archive's C "
        f"module is {'missing' if buildable else 'built'}: see setup.py")


def in_parts(values: list[Any], cuts: list[int]) -> list[list[Any]]:
    """The values cut into consecutive parts at the given positions (empty parts included)."""
    bounds = [0, *sorted(min(cut, len(values)) for cut in cuts), len(values)]
    return [values[start:end] for start, end in pairwise(bounds)]


cuts = st.lists(st.integers(0, 60), max_size=4)


@given(st.lists(texts, max_size=60), cuts)
def test_strings_equal_pyarrow(values: list[str], at: list[int]) -> None:
    array = columns.strings(in_parts(values, at))
    array.validate(full=True)
    assert array.equals(pa.array(values, pa.string()))


@given(string_lists, cuts)
def test_string_lists_equal_pyarrow(values: list[Any], at: list[int]) -> None:
    array = columns.string_lists(in_parts(values, at))
    array.validate(full=True)
    assert array.equals(pa.array(values, pa.list_(pa.string())))
    assert array.null_count == values.count(None)


@given(st.lists(option_maps, max_size=30), st.integers(0, 3), cuts)
def test_repeated_maps_equal_pyarrow(values: list[Any], runs: int, at: list[int]) -> None:
    # Runs of the very same object (as pages carry them) and equal copies (as fresh reads do).
    values = [v for value in values for v in [value] * runs + [tuple(value)]]
    array = columns.repeated(in_parts(values, at), OPTIONS)
    array.validate(full=True)
    assert array.to_pylist() == pa.array(values, OPTIONS).to_pylist()


@pytest.mark.usefixtures("either_path")
@pytest.mark.parametrize("convert", [columns.strings, columns.string_lists])
def test_values_of_another_type_are_refused(convert: Any) -> None:
    bad: list[Any] = [["a", 3]] if convert is columns.string_lists else ["a", None]
    with pytest.raises((TypeError, pa.ArrowInvalid, pa.ArrowTypeError)):
        convert([["a"], bad])


def test_unhashable_repeated_values_are_refused() -> None:
    with pytest.raises(TypeError):
        columns.repeated([[[("a", "b")]]], OPTIONS)


class Clears:
    """A value whose comparison empties the list it came from (Python code in __eq__)."""

    def __init__(self, part: list[Any]) -> None:
        self.part = part

    def __hash__(self) -> int:
        return 1

    def __eq__(self, other: object) -> bool:
        self.part.clear()
        return False


def test_values_that_change_their_column_while_indexed_are_refused_safely() -> None:
    part: list[Any] = []
    part += [Clears(part) for _ in range(3)]
    with pytest.raises(RuntimeError, match="changed while it was converted"):
        columns.repeated([part], OPTIONS)


@pytest.mark.usefixtures("either_path")
@pytest.mark.parametrize("convert", [columns.strings, columns.string_lists])
def test_a_column_not_in_parts_is_refused(convert: Any) -> None:
    with pytest.raises(TypeError, match="list of lists"):
        convert(["ab", "c"])


@pytest.mark.usefixtures("pure_pyarrow")
@given(st.lists(texts, max_size=20), string_lists, st.lists(option_maps, max_size=10))
def test_the_fallback_gives_the_same_arrays(strings: list[str], lists: list[Any],
                                            maps: list[Any]) -> None:
    assert not columns.accelerated()
    assert columns.strings([strings, strings]).equals(pa.array(strings * 2, pa.string()))
    assert columns.string_lists([lists]).equals(pa.array(lists, pa.list_(pa.string())))
    assert columns.repeated([maps], OPTIONS).to_pylist() == pa.array(maps,
                                                                       OPTIONS).to_pylist()
