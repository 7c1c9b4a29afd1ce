"""What spans a task attempt and a session make: pure data, from server timestamps only.

- A session is one trace; its root span runs from its creation to its end (closed, cancelled,
  purged or deleted), or to `--trace-session-max-age` when still open by then.
- Each task attempt is one span, `created_at` to `ended_at`. Its parent is the span of the task
  that submitted it (`created_by`), else the session's root span. It links to the attempt it
  retries (the last of `retry_of_ids`) and to the producer of each of its data dependencies
  (lineage.py's rule).
- Phase spans nest in the task span, each only when both of its timestamps are set: queued
  (submitted -> received), acquisition (received -> acquired), fetch (acquired -> fetched),
  processing (started -> processed), finalize (processed -> ended).
- A failed attempt (ERROR, TIMEOUT, RETRIED) has status ERROR with its error; the others UNSET.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from armonik_observe.fact_columns import TIME_COLUMNS, TaskFacts
from armonik_observe.model import SessionInfo
from armonik_observe.traces.ids import session_span_id, span_id, trace_id

Attributes = dict[str, Any]


class Producers(Protocol):
    """Who produces a result (lineage.py's rule); None when unknown."""

    def get(self, result_id: str, /) -> str | None:
        """The producer's task id."""

PHASES = (
    ("queued", "submitted_at", "received_at"),
    ("acquisition", "received_at", "acquired_at"),
    ("fetch", "acquired_at", "fetched_at"),
    ("processing", "started_at", "processed_at"),
    ("finalize", "processed_at", "ended_at"),
)
FAILED = frozenset({"ERROR", "TIMEOUT", "RETRIED"})
DURATIONS = ("creation_to_end", "processing_to_end", "received_to_end")
ROW_COLUMNS = (
    "task_id", "session_id", "status", "partition_id", "application_name",
    "application_version", "application_namespace", "application_service", "pod_hostname",
    "initial_task_id", "created_by", "error", "status_message", "priority", "max_retries",
    "options", "retry_of_ids", "data_dependencies", *sorted(TIME_COLUMNS - {"max_duration"}),
)


@dataclass(slots=True)
class Link:
    """A link to another span of the same trace."""

    span_id: int
    attributes: Attributes


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ is several times slower
class SpanPlan:
    """One span to write: ids, parent (None: a trace root), server times, what it says."""

    name: str
    trace_id: int
    span_id: int
    parent_id: int | None
    start_ns: int
    end_ns: int
    attributes: Attributes
    links: tuple[Link, ...] = ()
    error: str | None = None  # set: status ERROR with this description
    phases: tuple[SpanPlan, ...] = field(default=())


def task_rows(facts: TaskFacts) -> Iterator[dict[str, Any]]:
    """Each task of detailed facts as a dict of the columns spans use (times: micros or 0)."""
    columns = [facts[name].tolist() if name in TIME_COLUMNS else facts[name]
               for name in ROW_COLUMNS]
    for values in zip(*columns, strict=True):
        yield dict(zip(ROW_COLUMNS, values, strict=True))


def task_span(row: Mapping[str, Any], producers: Producers, phases: bool) -> SpanPlan:
    """The span of one ended task attempt (with its phases when asked)."""
    session, task = row["session_id"], row["task_id"]
    trace, own = trace_id(session), span_id(task)
    end = row["ended_at"]
    start = row["created_at"] or row["submitted_at"] or end
    parent = span_id(row["created_by"]) if row["created_by"] else session_span_id(session)
    status = row["status"]
    failed = status in FAILED
    return SpanPlan(
        name="task", trace_id=trace, span_id=own, parent_id=parent,
        start_ns=min(start, end) * 1000, end_ns=end * 1000,
        attributes=task_attributes(row), links=_links(row, producers),
        error=(row["error"] or row["status_message"] or status) if failed else None,
        phases=tuple(_phases(row, trace, own)) if phases else (),
    )


# Task span attribute -> the task column it shows (empty strings are left out).
_TASK_ATTRIBUTES = (
    ("armonik.session.id", "session_id"), ("armonik.task.id", "task_id"),
    ("armonik.task.status", "status"), ("armonik.partition.id", "partition_id"),
    ("armonik.application.name", "application_name"),
    ("armonik.application.version", "application_version"),
    ("armonik.application.namespace", "application_namespace"),
    ("armonik.application.service", "application_service"),
    ("armonik.pod.hostname", "pod_hostname"), ("armonik.task.initial_id", "initial_task_id"),
    ("armonik.task.priority", "priority"), ("armonik.task.max_retries", "max_retries"),
)


def task_attributes(row: Mapping[str, Any]) -> Attributes:
    """The armonik.* attributes of a task span."""
    attributes: Attributes = {key: value for key, column in _TASK_ATTRIBUTES
                              if (value := row[column]) != "" and value is not None}
    for name in DURATIONS:
        if row[name]:
            attributes[f"armonik.task.{name}_seconds"] = row[name] / 1e6
    if row["submitted_at"] and row["received_at"]:
        attributes["armonik.task.queue_wait_seconds"] = (
            row["received_at"] - row["submitted_at"]) / 1e6
    for key, value in row["options"] or ():
        attributes[f"armonik.task.option.{key}"] = value
    return attributes


def _links(row: Mapping[str, Any], producers: Producers) -> tuple[Link, ...]:
    links = [Link(span_id(retried), {"armonik.link": "retry_of"})
             for retried in (row["retry_of_ids"] or ())[-1:]]
    for result in row["data_dependencies"] or ():
        producer = producers.get(result)
        if producer is not None and producer != row["task_id"]:
            links.append(Link(span_id(producer), {"armonik.link": "data_dependency",
                                                  "armonik.result.id": result}))
    return tuple(links)


def _phases(row: Mapping[str, Any], trace: int, parent: int) -> Iterator[SpanPlan]:
    for name, begins, ends in PHASES:
        start, end = row[begins], row[ends]
        if start and end and end >= start:
            yield SpanPlan(name=name, trace_id=trace, span_id=span_id(row["task_id"], name),
                           parent_id=parent, start_ns=start * 1000, end_ns=end * 1000,
                           attributes={"armonik.session.id": row["session_id"],
                                       "armonik.task.id": row["task_id"]})


def session_end(session: SessionInfo) -> int | None:
    """When a session stopped: closed or cancelled, else purged or deleted (None: open)."""
    return session.ended_at or session.purged_at or session.deleted_at


def session_span(session: SessionInfo, end_us: int, open_at_end: bool = False) -> SpanPlan:
    """The root span of a session's trace, from its creation to `end_us`."""
    start = session.created_at or end_us
    attributes: Attributes = {
        "armonik.session.id": session.session_id,
        "armonik.session.status": "RUNNING" if open_at_end else session.status,
        "armonik.partition.ids": list(session.partition_ids),
    }
    if session.application_name:
        attributes["armonik.application.name"] = session.application_name
    if open_at_end:
        attributes["armonik.session.open"] = True  # ended at --trace-session-max-age
    return SpanPlan(name="session", trace_id=trace_id(session.session_id),
                    span_id=session_span_id(session.session_id), parent_id=None,
                    start_ns=min(start, end_us) * 1000, end_ns=end_us * 1000,
                    attributes=attributes)


def span_count(plans: Sequence[SpanPlan]) -> int:
    """Spans the plans write, phases included."""
    return sum(1 + len(plan.phases) for plan in plans)
