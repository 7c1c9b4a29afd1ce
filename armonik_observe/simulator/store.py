"""The simulated control plane's store of record: sessions, tasks, results and look-ups.

The operations live in mixins (`session_ops`, `result_ops`) and in `plane.ControlPlane`, which
holds the task state machine. Every status change goes through `ControlPlane._set_status`.
"""

from __future__ import annotations

import random
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import grpc
from armonik.protogen.common.objects_pb2 import TaskOptions

from armonik_observe.model import SessionStatus, TaskStatus
from armonik_observe.simulator.clock import MICROS, Scheduler, SimClock
from armonik_observe.simulator.ended import EndedIndex
from armonik_observe.simulator.events import EventBus
from armonik_observe.simulator.profile import TaskProfile
from armonik_observe.simulator.records import SimPartition, SimResult, SimSession, SimTask

# A result to create: (name, data or None, manual_deletion).
ResultSpec = tuple[str, bytes | None, bool]
# How long a real control plane keeps a task after it ends (its TTL index, 10 days by default).
DEFAULT_TTL_US = 10 * 86_400 * MICROS


class PlaneError(Exception):
    """A request the control plane refuses, with the gRPC status a real server would give."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class TaskCreation:
    """What a client gives to create one task."""

    payload_id: str
    expected_output_ids: Sequence[str]
    data_dependencies: Sequence[str] = ()
    options: TaskOptions | None = None


@dataclass(slots=True)
class SessionState:
    """Per-session bookkeeping beside the SessionRaw record."""

    record: SimSession
    profile: TaskProfile
    # Every task and result the plane holds for the session, in creation order: a deleted
    # session's tasks stay here (not in the plane's `tasks`) until they expire.
    tasks: dict[str, SimTask] = field(default_factory=dict)
    results: dict[str, SimResult] = field(default_factory=dict)
    active: int = 0  # tasks not yet in a final status
    version: int = 0  # bumped on every change to one of its tasks (for cached sorts)


_ID_BITS = (1 << 128) - 1


class PlaneStore(ABC):
    """State shared by every control-plane operation."""

    def __init__(
        self,
        *,
        clock: SimClock,
        scheduler: Scheduler,
        bus: EventBus,
        rng: random.Random,
        partitions: Iterable[SimPartition],
        default_profile: TaskProfile,
        ttl_us: int = DEFAULT_TTL_US,
        id_salt: int = 0,
    ) -> None:
        self.clock = clock
        self.scheduler = scheduler
        self.bus = bus
        self.rng = rng
        # Mixed into every id: the seed decides the workload; a fresh salt makes the same
        # workload's ids new, so that two runs never collide in one archive.
        self._id_salt = id_salt & _ID_BITS
        self.partitions = {p.partition_id: p for p in partitions}
        self.default_profile = default_profile
        self.sessions: dict[str, SessionState] = {}
        self.tasks: dict[str, SimTask] = {}
        self.results: dict[str, SimResult] = {}
        self.deleted_tasks: dict[str, SimTask] = {}  # deleted sessions' tasks, until they expire
        self.ended = EndedIndex()
        # Retention: ended tasks are forgotten `ttl_us` after they end (see expiry.py).
        self.ttl_us = ttl_us
        self.expired_tasks = 0
        self.expired_sessions = 0
        self._expiry_scheduled = False
        self._waiting: dict[str, list[str]] = {}
        self._missing: dict[str, int] = {}
        self._children: dict[str, list[str]] = {}
        # Hooks: a task is queued, a task leaves its worker slot, a session has nothing left to do.
        self.on_ready: list[Callable[[SimTask], None]] = []
        self.on_release: list[Callable[[SimTask], None]] = []
        self.on_idle: list[Callable[[str], None]] = []

    # -- time and ids -------------------------------------------------------------------------

    def now(self) -> int:
        """Current simulated time: the running action's due time, else the clock's."""
        scheduler = self.scheduler
        if scheduler.in_action:
            return scheduler.current_us
        return max(self.clock.now_us(), scheduler.current_us)

    def new_id(self) -> str:
        """A UUID-shaped identifier: deterministic for a seed and a salt."""
        return str(uuid.UUID(int=self.rng.getrandbits(128) ^ self._id_salt, version=4))

    # -- look-ups -----------------------------------------------------------------------------

    def session(self, session_id: str) -> SessionState:
        """Return a session or raise NOT_FOUND."""
        state = self.sessions.get(session_id)
        if state is None:
            raise PlaneError(grpc.StatusCode.NOT_FOUND, f"session {session_id!r} not found")
        return state

    def task(self, task_id: str) -> SimTask:
        """Return a task or raise NOT_FOUND."""
        task = self.tasks.get(task_id)
        if task is None:
            raise PlaneError(grpc.StatusCode.NOT_FOUND, f"task {task_id!r} not found")
        return task

    def result(self, result_id: str, session_id: str | None = None) -> SimResult:
        """Return a result (of the given session, when one is named) or raise NOT_FOUND."""
        result = self.results.get(result_id)
        if result is None or (session_id is not None and result.session_id != session_id):
            raise PlaneError(grpc.StatusCode.NOT_FOUND, f"result {result_id!r} not found")
        return result

    def session_tasks(self, session_id: str) -> list[SimTask]:
        """Every task of a session, in creation order."""
        tasks = self.tasks
        return [t for t in self.session(session_id).tasks.values() if t.task_id in tasks]

    def session_results(self, session_id: str) -> list[SimResult]:
        """Every result of a session, in creation order."""
        return list(self.session(session_id).results.values())

    def _require_open(self, state: SessionState, created_by: str) -> None:
        record = state.record
        # Workers may still submit subtasks in a closed session; clients may not.
        open_statuses = {SessionStatus.RUNNING, SessionStatus.PAUSED}
        if created_by:
            open_statuses.add(SessionStatus.CLOSED)
        if record.status not in open_statuses:
            raise PlaneError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"session {record.session_id} is {record.status.name}: submission is closed",
            )
        allowed = record.worker_submission if created_by else record.client_submission
        if not allowed:
            raise PlaneError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"submission is stopped for session {record.session_id}",
            )

    def _require_status(self, state: SessionState, allowed: set[SessionStatus], verb: str) -> None:
        if state.record.status not in allowed:
            raise PlaneError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"cannot {verb} session {state.record.session_id}: it is "
                f"{state.record.status.name}",
            )

    @abstractmethod
    def cancel_tasks(self, tasks: Iterable[SimTask], reason: str = "cancelled") -> list[SimTask]:
        """Cancel every unfinished task given."""

    @abstractmethod
    def _submit(self, task: SimTask) -> None:
        """Queue a task whose inputs are available."""

    @abstractmethod
    def _release(self, task: SimTask) -> None:
        """Forget a task's scheduled work and free its worker slot."""

    @abstractmethod
    def _set_status(self, task: SimTask, status: TaskStatus) -> None:
        """Change a task's status."""
