"""Protobuf messages to plain records: the only place collectors read wire types."""

from __future__ import annotations

from typing import Any

from armonik_observe.model import (
    EventKind,
    HealthSample,
    HealthStatus,
    PartitionInfo,
    SessionEvent,
    SessionInfo,
    SessionStatus,
    TaskFact,
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


def task_fact(task: Any, detailed: bool = False) -> TaskFact:
    """Convert a TaskSummary (or, with `detailed`, a TaskDetailed) into a TaskFact."""
    options = task.options
    lists: dict[str, tuple[str, ...]] = {}
    if detailed:
        lists = {
            "retry_of_ids": tuple(task.retry_of_ids),
            "parent_task_ids": tuple(task.parent_task_ids),
            "data_dependencies": tuple(task.data_dependencies),
            "expected_output_ids": tuple(task.expected_output_ids),
        }
    return TaskFact(
        task_id=task.id,
        session_id=task.session_id,
        status=task_status(task.status),
        partition_id=options.partition_id,
        application_name=options.application_name,
        application_version=options.application_version,
        created_at=micros(task, "created_at"),
        submitted_at=micros(task, "submitted_at"),
        received_at=micros(task, "received_at"),
        acquired_at=micros(task, "acquired_at"),
        fetched_at=micros(task, "fetched_at"),
        started_at=micros(task, "started_at"),
        processed_at=micros(task, "processed_at"),
        ended_at=micros(task, "ended_at"),
        creation_to_end=micros(task, "creation_to_end_duration"),
        processing_to_end=micros(task, "processing_to_end_duration"),
        received_to_end=micros(task, "received_to_end_duration"),
        pod_hostname=task.pod_hostname,
        owner_pod_id=task.owner_pod_id,
        initial_task_id=task.initial_task_id,
        payload_id=task.payload_id,
        created_by=task.created_by,
        status_message=task.status_message,
        error=task.output.error if detailed else task.error,
        max_duration=micros(options, "max_duration"),
        max_retries=options.max_retries,
        priority=options.priority,
        options=tuple(sorted(options.options.items())),
        **lists,
    )


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
        return _new_task(message.new_task, session_id, observed_at)
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


def _new_task(new: Any, session_id: str, observed_at: int) -> SessionEvent:
    return SessionEvent(
        observed_at, session_id, EventKind.NEW_TASK,
        task_id=new.task_id, status=task_status(new.status), payload_id=new.payload_id,
        origin_task_id=new.origin_task_id,
        expected_output_ids=tuple(new.expected_output_keys),
        data_dependencies=tuple(new.data_dependencies),
        retry_of_ids=tuple(new.retry_of_ids),
        parent_task_ids=tuple(new.parent_task_ids),
    )
