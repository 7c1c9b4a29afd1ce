"""Segments that compaction or retention took out of an archive, readable for a grace period.

Upkeep never deletes a segment that readers may have listed. Compaction and retention retire it
instead: `DIR/.retired.json` maps its path (relative to DIR) to when it was retired (epoch
microseconds, upkeep's clock). Readers opened afterwards skip retired segments; connections
opened before go on reading them, where they are, until `purge` deletes them once the grace
period has passed. Only upkeep writes the ledger (one process at a time), and always atomically:
a crash leaves the previous ledger or the next.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from armonik_observe.archive import layout
from armonik_observe.archive.layout import ArchiveError

LEDGER = ".retired.json"
# Long enough for any interactive query or export begun before an upkeep pass to finish.
DEFAULT_GRACE = timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(moment: datetime) -> int:
    """An aware datetime as epoch microseconds."""
    if moment.tzinfo is None:
        raise ValueError("archive upkeep needs an aware datetime for `now`")
    return (moment - _EPOCH) // timedelta(microseconds=1)


def read(directory: Path) -> dict[str, int]:
    """The retired segments: relative path to retirement time (epoch microseconds)."""
    try:
        raw = json.loads((directory / LEDGER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise ArchiveError(f"{directory}: unreadable {LEDGER} ({error})") from None
    retired = raw.get("retired") if isinstance(raw, dict) else None
    if not isinstance(retired, dict):
        raise ArchiveError(f"{directory}: {LEDGER} holds no 'retired' map")
    return {str(path): int(when) for path, when in retired.items()}


def retire(directory: Path, paths: Iterable[Path], now_us: int) -> list[Path]:
    """Take segments out of the archive for new readers; return those not retired before.

    A segment retired earlier keeps its first retirement time: retiring again (after a crash,
    or by another pass) never extends its grace.
    """
    ledger = read(directory)
    added = [path for path in paths if _key(directory, path) not in ledger]
    if added:
        ledger.update((_key(directory, path), now_us) for path in added)
        _write(directory, ledger)
    return added


def purge(directory: Path, grace: timedelta, now_us: int) -> list[Path]:
    """Delete the segments retired at least `grace` before `now_us`; return their paths.

    Files go first, then their ledger entries: a crash in between leaves entries for files
    that are gone, which new readers skip anyway and the next purge drops.
    """
    ledger = read(directory)
    horizon = now_us - grace // timedelta(microseconds=1)
    due = sorted(key for key, when in ledger.items() if when <= horizon)
    if not due:
        return []
    paths = [directory / key for key in due]
    for path in paths:
        path.unlink(missing_ok=True)
    for partition in {path.parent for path in paths}:
        with contextlib.suppress(OSError):  # still holds segments (or a write in flight)
            partition.rmdir()
    for key in due:
        del ledger[key]
    _write(directory, ledger)
    return paths


def _key(directory: Path, path: Path) -> str:
    return path.relative_to(directory).as_posix()


def _write(directory: Path, ledger: dict[str, int]) -> None:
    payload = json.dumps({"retired": ledger}, indent=0, sort_keys=True).encode()
    layout.write_atomically(directory / LEDGER, lambda tmp: tmp.write_bytes(payload))
