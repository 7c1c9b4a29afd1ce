"""Plain typed vocabulary shared by every part: statuses, their names and the task state machine."""

from __future__ import annotations

from enum import IntEnum


class TaskStatus(IntEnum):
    """ArmoniK task statuses, with the wire enum numbers."""

    UNSPECIFIED = 0
    CREATING = 1
    SUBMITTED = 2
    DISPATCHED = 3
    COMPLETED = 4
    ERROR = 5
    TIMEOUT = 6
    CANCELLING = 7
    CANCELLED = 8
    PROCESSING = 9
    PROCESSED = 10
    RETRIED = 11
    PENDING = 12
    PAUSED = 13


class ResultStatus(IntEnum):
    """ArmoniK result statuses, with the wire enum numbers."""

    UNSPECIFIED = 0
    CREATED = 1
    COMPLETED = 2
    ABORTED = 3
    DELETED = 4
    NOTFOUND = 127


class SessionStatus(IntEnum):
    """ArmoniK session statuses, with the wire enum numbers."""

    UNSPECIFIED = 0
    RUNNING = 1
    CANCELLED = 2
    PAUSED = 3
    CLOSED = 4
    PURGED = 5
    DELETED = 6


class HealthStatus(IntEnum):
    """Health of one control-plane service, with the wire enum numbers."""

    UNSPECIFIED = 0
    HEALTHY = 1
    DEGRADED = 2
    UNHEALTHY = 3


TERMINAL_TASK_STATUSES = frozenset(
    {
        TaskStatus.COMPLETED,
        TaskStatus.ERROR,
        TaskStatus.TIMEOUT,
        TaskStatus.CANCELLED,
        TaskStatus.RETRIED,
    }
)

# The real server's task state machine (armonik-semantics.md). Two edges are added on purpose:
# PENDING -> CANCELLED (a session cancel, or an aborted input, must reach waiting tasks) and
# PROCESSING -> PROCESSED -> final, the short-lived intermediate state.
TASK_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.CREATING: frozenset({TaskStatus.PENDING, TaskStatus.CANCELLED}),
    TaskStatus.PENDING: frozenset({TaskStatus.SUBMITTED, TaskStatus.PAUSED, TaskStatus.CANCELLED}),
    TaskStatus.SUBMITTED: frozenset(
        {TaskStatus.DISPATCHED, TaskStatus.PAUSED, TaskStatus.CANCELLED}
    ),
    TaskStatus.DISPATCHED: frozenset(
        {TaskStatus.PROCESSING, TaskStatus.SUBMITTED, TaskStatus.PAUSED, TaskStatus.CANCELLED}
    ),
    TaskStatus.PROCESSING: frozenset(
        {
            TaskStatus.PROCESSED,
            TaskStatus.COMPLETED,
            TaskStatus.ERROR,
            TaskStatus.RETRIED,
            TaskStatus.TIMEOUT,
            TaskStatus.CANCELLED,
        }
    ),
    TaskStatus.PROCESSED: frozenset(
        {TaskStatus.COMPLETED, TaskStatus.ERROR, TaskStatus.RETRIED, TaskStatus.CANCELLED}
    ),
    TaskStatus.PAUSED: frozenset({TaskStatus.SUBMITTED, TaskStatus.CANCELLED}),
}

# How far along the life cycle a status is; used to ignore regressions caused by reordering.
TASK_STATUS_RANK: dict[TaskStatus, int] = {
    TaskStatus.UNSPECIFIED: 0,
    TaskStatus.CREATING: 1,
    TaskStatus.PENDING: 2,
    TaskStatus.PAUSED: 3,
    TaskStatus.SUBMITTED: 3,
    TaskStatus.DISPATCHED: 4,
    TaskStatus.PROCESSING: 5,
    TaskStatus.PROCESSED: 6,
    TaskStatus.CANCELLING: 6,
    TaskStatus.COMPLETED: 7,
    TaskStatus.ERROR: 7,
    TaskStatus.TIMEOUT: 7,
    TaskStatus.CANCELLED: 7,
    TaskStatus.RETRIED: 7,
}


def is_allowed_transition(before: TaskStatus, after: TaskStatus) -> bool:
    """Tell whether the real state machine lets a task go from `before` to `after`."""
    return after in TASK_TRANSITIONS.get(before, frozenset())


def task_status_name(value: int) -> str:
    """Name a task status number; unknown numbers become `UNKNOWN_<n>` instead of failing."""
    try:
        return TaskStatus(value).name
    except ValueError:
        return f"UNKNOWN_{value}"
