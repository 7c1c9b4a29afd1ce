"""Protobuf messages to plain records: the only place collectors read wire types."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from armonik_observe.fact_columns import Micros, TaskFacts
from armonik_observe.model import (
    EventKind,
    HealthSample,
    HealthStatus,
    PartitionInfo,
    SessionEvent,
    SessionInfo,
    SessionStatus,
    task_status_name,
)

_RESULT_STATUS = {0: "UNSPECIFIED", 1: "CREATED", 2: "COMPLETED", 3: "ABORTED", 4: "DELETED",
                  127: "NOTFOUND"}
_TASK_STATUS = [task_status_name(n) for n in range(14)]


def task_status(value: int) -> str:
    """Name a task status number, unknown ones included."""
    return _TASK_STATUS[value] if 0 <= value < len(_TASK_STATUS) else task_status_name(value)


def result_status(value: int) -> str:
    """Name a result status number, unknown ones included."""
    return _RESULT_STATUS.get(value) or f"UNKNOWN_{value}"


def enum_name(enum: Any, value: int) -> str:
    """Name a value of one of the model's IntEnums, or UNKNOWN_<n>."""
    try:
        return str(enum(value).name)
    except ValueError:
        return f"UNKNOWN_{value}"


def micros(message: Any, name: str) -> int | None:
    """A Timestamp or Duration field as microseconds, None when unset."""
    if not message.HasField(name):
        return None
    value = getattr(message, name)
    return value.seconds * 1_000_000 + value.nanos // 1000


def task_facts(tasks: Sequence[Any], detailed: bool = False) -> TaskFacts:
    """Convert TaskSummary messages (TaskDetailed with `detailed`) into columns.

    Summaries give the core columns only (what metrics need); detailed tasks give every field.
    Each task's fields are read into one tuple, then transposed: a pass per column would
    rebuild the message wrappers once per column.
    """
    size = len(tasks)
    if not size:
        return TaskFacts.empty()
    ids, sessions, statuses, partitions, applications, *times = zip(
        *[_core_row(task) for task in tasks], strict=True)
    columns: dict[str, Any] = {
        "task_id": list(ids), "session_id": list(sessions),
        "status": list(map(task_status, statuses)), "partition_id": list(partitions),
        "application_name": list(applications),
    }
    for index, name in enumerate(("submitted_at", "received_at", "ended_at", "creation_to_end",
                                  "processing_to_end", "received_to_end")):
        columns[name] = _micros(times[2 * index], times[2 * index + 1])
    if detailed:
        columns.update(_detail_columns(tasks))
    return TaskFacts(columns, size)


def _core_row(task: Any) -> tuple[Any, ...]:
    options, submitted, received, ended = (task.options, task.submitted_at, task.received_at,
                                           task.ended_at)
    creation, processing, reception = (task.creation_to_end_duration,
                                       task.processing_to_end_duration,
                                       task.received_to_end_duration)
    return (task.id, task.session_id, task.status, options.partition_id,
            options.application_name, submitted.seconds, submitted.nanos, received.seconds,
            received.nanos, ended.seconds, ended.nanos, creation.seconds, creation.nanos,
            processing.seconds, processing.nanos, reception.seconds, reception.nanos)


_DETAIL_STRINGS = ("application_version", "application_namespace", "application_service",
                   "pod_hostname", "owner_pod_id", "initial_task_id", "payload_id", "created_by",
                   "status_message", "error", "max_retries", "priority", "options",
                   "retry_of_ids", "parent_task_ids", "data_dependencies", "expected_output_ids")
_DETAIL_TIMES = ("created_at", "acquired_at", "fetched_at", "started_at", "processed_at",
                 "max_duration")


def _detail_columns(tasks: Sequence[Any]) -> dict[str, Any]:
    values = list(zip(*[_detail_row(task) for task in tasks], strict=True))
    columns: dict[str, Any] = {name: list(values[i]) for i, name in enumerate(_DETAIL_STRINGS)}
    offset = len(_DETAIL_STRINGS)
    for index, name in enumerate(_DETAIL_TIMES):
        columns[name] = _micros(values[offset + 2 * index], values[offset + 2 * index + 1])
    return columns


def _detail_row(task: Any) -> tuple[Any, ...]:
    options = task.options
    generic = options.options
    created, acquired, fetched, started, processed, limit = (
        task.created_at, task.acquired_at, task.fetched_at, task.started_at, task.processed_at,
        options.max_duration)
    return (options.application_version, options.application_namespace,
            options.application_service, task.pod_hostname, task.owner_pod_id,
            task.initial_task_id, task.payload_id, task.created_by, task.status_message,
            task.output.error, options.max_retries, options.priority,
            tuple(sorted(generic.items())) if generic else (), tuple(task.retry_of_ids),
            tuple(task.parent_task_ids), tuple(task.data_dependencies),
            tuple(task.expected_output_ids), created.seconds, created.nanos, acquired.seconds,
            acquired.nanos, fetched.seconds, fetched.nanos, started.seconds, started.nanos,
            processed.seconds, processed.nanos, limit.seconds, limit.nanos)


def _micros(seconds: Sequence[int], nanos: Sequence[int]) -> Micros:
    """Microseconds from the seconds and nanos of Timestamps or Durations; 0 when unset."""
    return np.array(seconds, np.int64) * 1_000_000 + np.array(nanos, np.int64) // 1000


def session_info(session: Any) -> SessionInfo:
    """Convert a SessionRaw."""
    return SessionInfo(
        session_id=session.session_id,
        status=enum_name(SessionStatus, session.status),
        partition_ids=tuple(session.partition_ids),
        created_at=micros(session, "created_at"),
        cancelled_at=micros(session, "cancelled_at"),
        closed_at=micros(session, "closed_at"),
        purged_at=micros(session, "purged_at"),
        deleted_at=micros(session, "deleted_at"),
        duration=micros(session, "duration"),
        client_submission=session.client_submission,
        worker_submission=session.worker_submission,
        application_name=session.options.application_name,
        default_partition=session.options.partition_id,
        max_duration=micros(session.options, "max_duration"),
    )


def partition_info(partition: Any) -> PartitionInfo:
    """Convert a PartitionRaw."""
    return PartitionInfo(
        partition_id=partition.id,
        pod_max=partition.pod_max,
        pod_reserved=partition.pod_reserved,
        priority=partition.priority,
        preemption_percentage=partition.preemption_percentage,
        parent_partition_ids=tuple(partition.parent_partition_ids),
    )


def health_samples(response: Any, observed_at: int) -> list[HealthSample]:
    """Convert a CheckHealthResponse."""
    return [
        HealthSample(observed_at, s.name, enum_name(HealthStatus, s.healthy), s.message)
        for s in response.services
    ]


def session_event(message: Any, observed_at: int) -> SessionEvent | None:
    """Convert one EventSubscriptionResponse; None for an empty or unknown update."""
    kind = message.WhichOneof("update")
    session_id = message.session_id
    if kind == "task_status_update":
        update = message.task_status_update
        return SessionEvent(observed_at, session_id, EventKind.TASK_STATUS_UPDATE,
                            task_id=update.task_id, status=task_status(update.status))
    if kind == "new_task":
        new = message.new_task
        return new_task_event(new, task_status(new.status), session_id, observed_at)
    if kind == "new_result":
        new = message.new_result
        return SessionEvent(observed_at, session_id, EventKind.NEW_RESULT,
                            result_id=new.result_id, owner_id=new.owner_id,
                            status=result_status(new.status))
    if kind == "result_status_update":
        update = message.result_status_update
        return SessionEvent(observed_at, session_id, EventKind.RESULT_STATUS_UPDATE,
                            result_id=update.result_id, status=result_status(update.status))
    if kind == "result_owner_update":
        owner = message.result_owner_update
        return SessionEvent(observed_at, session_id, EventKind.RESULT_OWNER_UPDATE,
                            result_id=owner.result_id, owner_id=owner.current_owner_id,
                            previous_owner_id=owner.previous_owner_id)
    return None


def new_task_event(new: Any, status: str, session_id: str, observed_at: int) -> SessionEvent:
    """A NEW_TASK update as a record, its status already named."""
    return SessionEvent(
        observed_at, session_id, EventKind.NEW_TASK,
        task_id=new.task_id, status=status, payload_id=new.payload_id,
        origin_task_id=new.origin_task_id,
        expected_output_ids=tuple(new.expected_output_keys),
        data_dependencies=tuple(new.data_dependencies),
        retry_of_ids=tuple(new.retry_of_ids),
        parent_task_ids=tuple(new.parent_task_ids),
    )
