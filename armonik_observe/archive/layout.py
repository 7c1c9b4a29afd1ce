"""Where things live in an archive directory, and how a file becomes visible there atomically.

    DIR/.armonik-observe-archive                       marker (JSON with the format version)
    DIR/<table>/session_id=<escaped id>/part-*.parquet  tables of one session
    DIR/<table>/date=YYYY-MM-DD/part-*.parquet          tables without a session (by UTC day)

Segments are immutable: written as `*.parquet.tmp`, fsynced, then renamed to their final name.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, unquote

MARKER = ".armonik-observe-archive"
# The newest task end such that every task the exporter had read up to it is on disk: written
# after a flush has written all its segments, so a crash between two segments never moves it.
CHECKPOINT = ".tasks-checkpoint.json"
# When an exporter first started on this archive (its own clock): the task-facts start point
# survives restarts, even those before the control plane ever answered.
FIRST_START = ".first-start.json"


def write_checkpoint(directory: Path, ended_through_us: int) -> None:
    """Record that every task read with an end up to `ended_through_us` is archived."""
    payload = json.dumps({"tasks_ended_through_us": ended_through_us}).encode()
    write_atomically(directory / CHECKPOINT, lambda tmp: tmp.write_bytes(payload))


def read_checkpoint(directory: Path) -> int | None:
    """The last checkpoint, or None when there is none (or it cannot be read)."""
    return _read_int(directory / CHECKPOINT, "tasks_ended_through_us")


def keep_first_start(directory: Path, started_at_us: int) -> int:
    """The exporter's first start on this archive: recorded now if none was, else the old one."""
    first = _read_int(directory / FIRST_START, "started_at_us")
    if first is not None:
        return first
    payload = json.dumps({"started_at_us": started_at_us}).encode()
    write_atomically(directory / FIRST_START, lambda tmp: tmp.write_bytes(payload))
    return started_at_us


def _read_int(path: Path, key: str) -> int | None:
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))[key])
    except (OSError, ValueError, KeyError, TypeError):
        return None
FORMAT = "armonik-observe-archive"
# 2: tasks gained application_namespace and application_service (version 1 reads as null).
FORMAT_VERSION = 2
SEGMENT_SUFFIX = ".parquet"
TMP_SUFFIX = ".parquet.tmp"


class ArchiveError(Exception):
    """The archive directory cannot be used, or an archive operation cannot be done."""


def describe(error: OSError) -> str:
    """One line for an OSError: its message without the path repeated."""
    return error.strerror or str(error).splitlines()[0]


# -- the marker -----------------------------------------------------------------------------


def is_archive(directory: Path) -> bool:
    """Tell whether `directory` holds an archive marker."""
    return (directory / MARKER).is_file()


def check_marker(directory: Path) -> int:
    """The archive's format version; fails unless this code reads it."""
    try:
        marker = json.loads((directory / MARKER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArchiveError(f"{directory} is not an armonik-observe archive (no {MARKER})") from None
    except (OSError, ValueError) as error:
        raise ArchiveError(f"{directory}: unreadable archive marker ({error})") from None
    version = marker.get("version") if isinstance(marker, dict) else None
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ArchiveError(
            f"{directory}: archive format version {version!r} is not supported "
            f"(this code reads up to {FORMAT_VERSION})"
        )
    return version


def prepare(directory: Path) -> None:
    """Create an archive at `directory`, or check that an existing one can be written."""
    try:
        if is_archive(directory):
            if check_marker(directory) < FORMAT_VERSION:
                _write_marker(directory)  # what is written from now on has the newer columns
            _probe_writable(directory)
        elif directory.exists() and any(directory.iterdir()):
            raise ArchiveError(
                f"{directory} is not empty and is not an armonik-observe archive (no {MARKER})"
            )
        else:
            directory.mkdir(parents=True, exist_ok=True)
            _write_marker(directory)
    except OSError as error:
        raise ArchiveError(f"cannot write an archive at {directory}: {describe(error)}") from None


def _write_marker(directory: Path) -> None:
    payload = {"format": FORMAT, "version": FORMAT_VERSION}
    write_atomically(directory / MARKER, lambda tmp: tmp.write_text(json.dumps(payload)))


def _probe_writable(directory: Path) -> None:
    # os.access says yes to root on a read-only mount; only a real write tells.
    probe = directory / f".probe-{uuid.uuid4().hex}"
    probe.write_bytes(b"")
    probe.unlink()


# -- partitions and segments ----------------------------------------------------------------


def partition_dir(directory: Path, table: str, key: str, value: str) -> Path:
    """The directory of one partition; the value is percent-escaped to stay one path segment."""
    return directory / table / f"{key}={quote(value, safe='')}"


def partition_value(path: Path) -> str:
    """The unescaped partition value of a partition directory."""
    return unquote(path.name.partition("=")[2])


def partitions(directory: Path, table: str) -> Iterator[Path]:
    """The partition directories of a table, sorted by name."""
    root = directory / table
    if not root.is_dir():
        return
    yield from sorted(p for p in root.iterdir() if p.is_dir() and "=" in p.name)


def segment_name() -> str:
    """A new segment file name: sortable by creation time, unique across writers."""
    return f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:12]}{SEGMENT_SUFFIX}"


def segment_files(partition: Path) -> list[Path]:
    """The visible segments of a partition (never the `.tmp` files being written)."""
    return sorted(p for p in partition.iterdir() if p.name.endswith(SEGMENT_SUFFIX))


def tmp_files(partition: Path) -> list[Path]:
    """The `.parquet.tmp` files of a partition: in-flight writes, or strays of a crash."""
    return sorted(p for p in partition.iterdir() if p.name.endswith(TMP_SUFFIX))


# -- atomic visibility ----------------------------------------------------------------------


def write_atomically(target: Path, write: Callable[[Path], object]) -> None:
    """Have `write` fill a temporary file, fsync it, then rename it to `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    try:
        write(tmp)
        fsync(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync(target.parent)  # makes the rename itself durable


def fsync(path: Path) -> None:
    """Flush a file's (or a directory's) data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
