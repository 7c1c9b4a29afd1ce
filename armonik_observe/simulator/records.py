"""The simulator's ground truth: mutable records of tasks, results, sessions and partitions.

Times are integer microseconds since the Unix epoch in simulated time, so durations computed from
them are exact. `None` means "not set yet", as an unset protobuf Timestamp does on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from armonik.protogen.common.objects_pb2 import TaskOptions

from armonik_observe.model import ResultStatus, SessionStatus, TaskStatus

Micros = int


@dataclass(slots=True)
class SimPartition:
    """A partition and the pods that serve it."""

    partition_id: str
    pod_max: int
    pod_reserved: int
    priority: int
    preemption_percentage: int
    parent_partition_ids: list[str] = field(default_factory=list)
    pod_configuration: dict[str, str] = field(default_factory=dict)
    hostnames: list[str] = field(default_factory=list)
    slots_per_pod: int = 1


@dataclass(slots=True)
class SimSession:
    """A session as the control plane stores it."""

    session_id: str
    status: SessionStatus
    partition_ids: list[str]
    options: TaskOptions
    created_at: Micros
    client_submission: bool = True
    worker_submission: bool = True
    cancelled_at: Micros | None = None
    closed_at: Micros | None = None
    purged_at: Micros | None = None
    deleted_at: Micros | None = None

    @property
    def duration(self) -> Micros | None:
        """Time from creation to the first of cancel or close, as the server computes it."""
        ends = [t for t in (self.cancelled_at, self.closed_at) if t is not None]
        return min(ends) - self.created_at if ends else None


@dataclass(slots=True)
class SimTask:
    """One task attempt, with every field TaskDetailed carries."""

    task_id: str
    session_id: str
    options: TaskOptions
    payload_id: str
    created_by: str
    initial_task_id: str
    parent_task_ids: list[str]
    data_dependencies: list[str]
    expected_output_ids: list[str]
    retry_of_ids: list[str]
    status: TaskStatus
    created_at: Micros
    status_message: str = ""
    owner_pod_id: str = ""
    pod_hostname: str = ""
    submitted_at: Micros | None = None
    received_at: Micros | None = None
    acquired_at: Micros | None = None
    fetched_at: Micros | None = None
    started_at: Micros | None = None
    processed_at: Micros | None = None
    ended_at: Micros | None = None
    pod_ttl: Micros | None = None
    output_success: bool = False
    output_error: str = ""
    # Every status the task went through, in order: the ground truth of its life cycle.
    history: list[TaskStatus] = field(default_factory=list)
    # Bumped whenever scheduled work on the task must be forgotten (pause, cancel).
    generation: int = 0
    # Wire bytes of the task's summary once it has ended (it no longer changes), keyed by
    # with_errors: pages of ended tasks are then joined, not rebuilt field by field.
    summary_wire: dict[bool, bytes] | None = None

    @property
    def partition_id(self) -> str:
        """The partition the task runs on (a task option)."""
        return self.options.partition_id

    @property
    def creation_to_end(self) -> Micros | None:
        """ended_at - created_at, set once the task ends."""
        return _span(self.created_at, self.ended_at)

    @property
    def processing_to_end(self) -> Micros | None:
        """ended_at - started_at, set once a started task ends."""
        return _span(self.started_at, self.ended_at)

    @property
    def received_to_end(self) -> Micros | None:
        """ended_at - received_at, set once a received task ends."""
        return _span(self.received_at, self.ended_at)

    @property
    def error(self) -> str:
        """The error message of a failed task (TaskSummary.error)."""
        return self.output_error


@dataclass(slots=True)
class SimResult:
    """A result (payloads are results too)."""

    result_id: str
    session_id: str
    name: str
    owner_task_id: str
    status: ResultStatus
    created_at: Micros
    created_by: str = ""
    completed_at: Micros | None = None
    size: int = 0
    data: bytes | None = None
    opaque_id: bytes = b""
    manual_deletion: bool = False
    # Tasks the plane holds that name it (payload, output or input): retention keeps it while
    # one does.
    task_refs: int = 0


def _span(start: Micros | None, end: Micros | None) -> Micros | None:
    return None if start is None or end is None else end - start
