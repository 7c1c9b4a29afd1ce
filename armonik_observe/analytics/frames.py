"""Where analytics read tasks: the archive's `tasks` view (or a live control plane, live.py), as
Polars frames of one schema, so every analysis works on both.

A `Selection` says which tasks: sessions, a creation window, a partition, an application. It
filters the raw rows before the view keeps one row per task: every row of a task carries the
same session, partition, application and creation time, so that selects the same tasks as
filtering the view would, and lets Polars skip whole segments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from armonik_observe.archive import views
from armonik_observe.archive.reader import open as open_archive

# The columns analytics read: everything else (options, payloads, parents) is never decoded.
COLUMNS = (
    "task_id", "session_id", "initial_task_id", "created_by", "partition_id", "application_name",
    "status", "status_message", "error", "created_at", "submitted_at", "received_at",
    "acquired_at", "fetched_at", "started_at", "processed_at", "ended_at",
    "creation_to_end_seconds", "processing_to_end_seconds", "received_to_end_seconds",
    "pod_hostname", "owner_pod_id", "retry_of_ids", "data_dependencies", "expected_output_ids",
    "observed_at",
)


class AnalyticsError(ValueError):
    """Input analytics cannot work with (no such session, an empty archive, no control plane);
    the message is one line for the user."""


@dataclass(frozen=True)
class Selection:
    """Which tasks to analyse: sessions (none: all), tasks created in [since, until), a
    partition, an application."""

    sessions: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    partition: str | None = None
    application: str | None = None

    def predicate(self, *, sessions: bool = True) -> pl.Expr:
        """The condition on task rows; without the session part unless `sessions`."""
        conditions = [pl.lit(True)]
        if sessions and self.sessions:
            conditions.append(pl.col("session_id").is_in(list(self.sessions)))
        if self.since is not None:
            conditions.append(pl.col("created_at") >= as_utc(self.since))
        if self.until is not None:
            conditions.append(pl.col("created_at") < as_utc(self.until))
        if self.partition is not None:
            conditions.append(pl.col("partition_id") == self.partition)
        if self.application is not None:
            conditions.append(pl.col("application_name") == self.application)
        return pl.all_horizontal(conditions)

    @property
    def filtered(self) -> bool:
        """Whether anything beyond sessions narrows the tasks."""
        return any(value is not None for value in (self.since, self.until, self.partition,
                                                   self.application))


def as_utc(moment: datetime) -> datetime:
    """An aware datetime in UTC (naive ones are taken as UTC), to compare with archived times."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class TaskFrames:
    """The selected task rows (the archive's `tasks` schema, every row as read), the results
    (result_id, owner_task_id) when archived, and the sessions asked for or found."""

    raw: pl.LazyFrame
    results: pl.LazyFrame | None
    sessions: tuple[str, ...]
    source: str

    @property
    def tasks(self) -> pl.LazyFrame:
        """One row per task attempt, the most advanced (the `tasks` view's rule)."""
        return views.tasks(self.raw)

    def session(self, session_id: str) -> pl.DataFrame:
        """The tasks of one session, read once (every analysis of it reuses this frame).

        The session is picked before the view's rule runs, so only its segments are read."""
        return views.tasks(self.raw.filter(pl.col("session_id") == session_id)).collect()


def from_archive(directory: Path | str, selection: Selection) -> TaskFrames:
    """The tasks of an archive that the selection picks; AnalyticsError if there are none, or
    if a session asked for is in neither the tasks nor the sessions of the archive."""
    archive = open_archive(directory)
    where = f"the archive at {directory}"
    raw = archive.lazy("tasks", raw=True).select(COLUMNS)
    ids = pl.concat([raw.select("session_id"),
                     archive.lazy("sessions", raw=True).select("session_id")])
    if selection.sessions:  # only the sessions named are looked for
        known = _session_ids(ids.filter(pl.col("session_id").is_in(list(selection.sessions))))
        sessions = resolve_sessions(selection, known, set(), where)
    else:
        selected = _session_ids(raw.filter(selection.predicate()))
        if not selected and not _session_ids(ids.head(1)):
            raise AnalyticsError(f"{where} holds no task and no session")
        sessions = resolve_sessions(selection, set(), selected, where)
    scope = pl.col("session_id").is_in(list(sessions))
    results = views.results(archive.lazy("results", raw=True).filter(scope))
    return TaskFrames(raw.filter(scope & selection.predicate(sessions=False)),
                      results.select("result_id", "owner_task_id"), sessions, where)


def _session_ids(frame: pl.LazyFrame) -> set[str]:
    return set(frame.select("session_id").unique().collect().to_series().to_list())


def resolve_sessions(selection: Selection, known: set[str], selected: set[str],
                     where: str) -> tuple[str, ...]:
    """The sessions to analyse: those asked for (each must be known), else every session with a
    selected task, in order of id."""
    if selection.sessions:
        unknown = [s for s in selection.sessions if s not in known]
        if unknown:
            raise AnalyticsError(f"unknown session {unknown[0]!r} in {where}"
                                 + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1
                                    else ""))
        return tuple(dict.fromkeys(selection.sessions))
    if not selected:
        raise AnalyticsError(f"no task in {where} matches the selection"
                             if selection.filtered else f"{where} holds no task")
    return tuple(sorted(selected))
