"""Python columns to Arrow buffers, without a Python object per value (see _buffers.c)."""

from collections.abc import Sequence
from typing import Any

def utf8(values: list[str]) -> tuple[bytes, bytes]: ...
def utf8_lists(
    values: list[Sequence[str] | None],
) -> tuple[bytes | None, bytes, bytes, bytes, int]: ...
def indices(values: list[Any]) -> tuple[bytes, list[Any]]: ...
