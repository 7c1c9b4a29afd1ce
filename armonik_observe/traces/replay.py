"""Spans of archived sessions: the same spans the live exporter sends, from the archive.

`armonik-observe traces --archive DIR [SESSION...]` reads each session's task attempts from the
`tasks` view, the producers of their data dependencies by lineage.py's rule (the results
table's owners, which the archive has), and the session itself; it writes the spans with the
live path's plan (plan.py), so the ids, times and attributes are the same. A session still open
in the archive gets no root span (its task spans still point at it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import polars as pl

from armonik_observe.archive.layout import ArchiveError
from armonik_observe.archive.reader import Archive
from armonik_observe.archive.reader import open as open_archive
from armonik_observe.lineage import producers
from armonik_observe.model import SessionInfo
from armonik_observe.traces.output import SpanOutput
from armonik_observe.traces.plan import ROW_COLUMNS, session_end, session_span, task_span

_TIMES = tuple(f"{t}_at" for t in ("created", "submitted", "received", "acquired", "fetched",
                                     "started", "processed", "ended"))
_DURATIONS = ("creation_to_end", "processing_to_end", "received_to_end")
_AS_IS = tuple(c for c in ROW_COLUMNS if c not in {*_TIMES, *_DURATIONS, "options"})
_NAMES = (*_AS_IS, "options", *_TIMES, *_DURATIONS)
# A task view row with the live facts' names and units (micros, 0 when unset). The SQL is
# built from declared column names only; values (session ids) always go in as parameters.
_TASK_SQL = ", ".join([
    *_AS_IS, "map_entries(options) AS options",
    *(f"coalesce(epoch_us({t}), 0) AS {t}" for t in _TIMES),
    *(f"coalesce(CAST(round({d}_seconds * 1e6) AS BIGINT), 0) AS {d}" for d in _DURATIONS),
])
_ROWS_PER_FETCH = 10_000
_SESSION_DATES = ("created_at", "cancelled_at", "closed_at", "purged_at", "deleted_at")


def archived_sessions(archive: Archive, wanted: Iterable[str] = ()) -> list[str]:
    """The sessions to replay: those asked for (each must have tasks), else every one."""
    known = [row[0] for row in archive.query(
        "SELECT DISTINCT session_id FROM tasks ORDER BY session_id")]
    asked = list(wanted)
    missing = sorted(set(asked) - set(known))
    if missing:
        raise ArchiveError(f"no task of session {missing[0]} in the archive at "
                           f"{archive.directory}")
    return asked or known


def replay(directory: Path, sessions: Iterable[str], output: SpanOutput, *, phases: bool = True,
           progress: Callable[[list[str]], Iterable[str]] = iter) -> None:
    """Write the spans of the archived sessions to `output`."""
    with open_archive(directory) as archive:
        for session_id in progress(archived_sessions(archive, sessions)):
            _replay_session(archive, session_id, output, phases)


def _replay_session(archive: Archive, session_id: str, output: SpanOutput, phases: bool) -> None:
    of_session = pl.col("session_id") == session_id
    tasks = archive.lazy("tasks").filter(of_session)
    results = archive.lazy("results").filter(of_session)
    found = dict(producers(tasks, results).collect().iter_rows())
    for row in _task_rows(archive, session_id):
        output.write(task_span(row, found, phases))
    session = _session(archive, session_id)
    end = None if session is None else session_end(session)
    if session is not None and end is not None and session.status not in ("RUNNING", "PAUSED"):
        output.write(session_span(session, end))


def _task_rows(archive: Archive, session_id: str) -> Iterator[dict[str, Any]]:
    # Streamed a chunk at a time: a session of millions of tasks never sits in memory whole.
    cursor = archive.connection.execute(
        f"SELECT {_TASK_SQL} FROM tasks WHERE session_id = ? AND ended_at IS NOT NULL "
        "ORDER BY ended_at, task_id", [session_id])
    while chunk := cursor.fetchmany(_ROWS_PER_FETCH):
        for values in chunk:
            row = dict(zip(_NAMES, values, strict=True))
            row["options"] = [(entry["key"], entry["value"]) for entry in row["options"] or ()]
            yield row


def _session(archive: Archive, session_id: str) -> SessionInfo | None:
    dates = ", ".join(f"epoch_us({d})" for d in _SESSION_DATES)
    found = archive.query(f"SELECT status, partition_ids, application_name, {dates} "
                          "FROM sessions WHERE session_id = ?", [session_id])
    if not found:
        return None
    status, partitions, application, *times = found[0]
    created, cancelled, closed, purged, deleted = times
    return SessionInfo(session_id, status, tuple(partitions or ()), created,
                       cancelled_at=cancelled, closed_at=closed, purged_at=purged,
                       deleted_at=deleted, application_name=application or "")
