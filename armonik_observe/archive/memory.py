"""Give memory that the archive's bulk work freed back to the system.

Compaction and flushes allocate through pyarrow's pool (mimalloc) and, for Parquet buffers and
compression contexts, through the C library's malloc, from worker threads. Both keep freed
memory for reuse, so the exporter's RSS would keep the peak of the largest merge for good.
After such work, this returns what is free: the pool's unused pages, then glibc's free heap
pages (malloc_trim, where the C library has it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import pyarrow as pa


@functools.cache
def _trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    return getattr(ctypes.CDLL(name), "malloc_trim", None)


def release_free_memory() -> None:
    """Return the memory pyarrow's pool and the C allocator hold unused to the system."""
    pa.default_memory_pool().release_unused()
    trim = _trim()
    if trim is not None:
        trim(0)
