"""Plain typed vocabulary shared by every part: statuses, their names and the task state machine."""

from __future__ import annotations

from dataclasses import dataclass
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


# -- records crossing the collector boundary: plain data, no protobuf ------------------------

Micros = int


# TaskFact and SessionEvent are built thousands of times per second: a frozen dataclass's
# __init__ costs 8x a plain one, so these two are not frozen; treat them as read-only.
@dataclass(slots=True, unsafe_hash=True)
class TaskFact:
    """Authoritative task record read from ListTasks pages; times are epoch microseconds."""

    task_id: str
    session_id: str
    status: str
    partition_id: str
    application_name: str
    application_version: str
    created_at: Micros | None
    submitted_at: Micros | None
    received_at: Micros | None
    acquired_at: Micros | None
    fetched_at: Micros | None
    started_at: Micros | None
    processed_at: Micros | None
    ended_at: Micros | None
    creation_to_end: Micros | None
    processing_to_end: Micros | None
    received_to_end: Micros | None
    pod_hostname: str = ""
    owner_pod_id: str = ""
    initial_task_id: str = ""
    payload_id: str = ""
    created_by: str = ""
    status_message: str = ""
    error: str = ""
    max_duration: Micros | None = None
    max_retries: int = 0
    priority: int = 0
    options: tuple[tuple[str, str], ...] = ()
    # Only ListTasksDetailed carries the lists; summaries leave them None.
    retry_of_ids: tuple[str, ...] | None = None
    parent_task_ids: tuple[str, ...] | None = None
    data_dependencies: tuple[str, ...] | None = None
    expected_output_ids: tuple[str, ...] | None = None
    application_namespace: str = ""
    application_service: str = ""

    @property
    def queue_wait(self) -> Micros | None:
        """Time from submission to the agent receiving the task (submitted_at -> received_at)."""
        if self.submitted_at is None or self.received_at is None:
            return None
        return self.received_at - self.submitted_at


class EventKind(IntEnum):
    """Kinds of session events, with the wire enum numbers."""

    NEW_TASK = 1
    TASK_STATUS_UPDATE = 2
    NEW_RESULT = 3
    RESULT_STATUS_UPDATE = 4
    RESULT_OWNER_UPDATE = 5


@dataclass(slots=True, unsafe_hash=True)
class SessionEvent:
    """One event of a session stream, stamped with the exporter's clock (the wire has none)."""

    observed_at: Micros
    session_id: str
    kind: EventKind
    task_id: str = ""
    result_id: str = ""
    status: str = ""
    owner_id: str = ""
    previous_owner_id: str = ""
    payload_id: str = ""
    origin_task_id: str = ""
    expected_output_ids: tuple[str, ...] = ()
    data_dependencies: tuple[str, ...] = ()
    retry_of_ids: tuple[str, ...] = ()
    parent_task_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A session as ListSessions reports it."""

    session_id: str
    status: str
    partition_ids: tuple[str, ...]
    created_at: Micros | None
    cancelled_at: Micros | None = None
    closed_at: Micros | None = None
    purged_at: Micros | None = None
    deleted_at: Micros | None = None
    duration: Micros | None = None
    client_submission: bool = True
    worker_submission: bool = True
    application_name: str = ""
    default_partition: str = ""
    max_duration: Micros | None = None

    @property
    def ended_at(self) -> Micros | None:
        """When the session stopped taking work: the first of cancelled_at and closed_at."""
        ends = [t for t in (self.cancelled_at, self.closed_at) if t is not None]
        return min(ends) if ends else None


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    """A partition as ListPartitions reports it."""

    partition_id: str
    pod_max: int
    pod_reserved: int
    priority: int
    preemption_percentage: int
    parent_partition_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StatusCounts:
    """One CountTasksByStatus answer: task counts by status name for one scope."""

    observed_at: Micros
    scope: str  # "partition" or "session"
    key: str  # the partition id or session id
    counts: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class HealthSample:
    """One CheckHealth answer for one service."""

    observed_at: Micros
    service: str
    status: str
    message: str = ""


@dataclass(frozen=True, slots=True)
class Versions:
    """Core and API versions of the control plane."""

    core: str
    api: str


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """One result as ListResults reports it (ResultRaw); times are epoch microseconds."""

    session_id: str
    result_id: str
    name: str
    owner_task_id: str
    status: str
    created_at: Micros | None
    completed_at: Micros | None
    size: int
    created_by: str = ""
    opaque_id: str = ""  # hex of the opaque id bytes
    manual_deletion: bool = False
