"""Python columns to Arrow buffers, without a Python object per value (see _buffers.c).

Each function takes a column in parts (a list of lists, such as pages of rows) and converts it
as one array.
"""

from collections.abc import Sequence
from typing import Any

def utf8(parts: list[list[str]]) -> tuple[bytes, bytes]: ...
def utf8_lists(
    parts: list[list[Sequence[str] | None]],
) -> tuple[bytes | None, bytes, bytes, bytes, int]: ...
def indices(parts: list[list[Any]]) -> tuple[bytes, list[Any]]: ...
