"""The simulated control plane: the store of record and every state change it allows.

Services call the client operations; the worker pools and the workload drive task execution.
Every status change goes through `_set_status`, which checks the real state machine, keeps the
task's history and publishes the event.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import grpc
from armonik.protogen.common.objects_pb2 import TaskOptions

from armonik_observe.model import (
    TERMINAL_TASK_STATUSES,
    ResultStatus,
    SessionStatus,
    TaskStatus,
    is_allowed_transition,
)
from armonik_observe.simulator import events as ev
from armonik_observe.simulator.clock import Scheduler, SimClock
from armonik_observe.simulator.events import EventBus
from armonik_observe.simulator.profile import TaskProfile
from armonik_observe.simulator.records import SimPartition, SimResult, SimSession, SimTask

# A result to create: (name, data or None, manual_deletion).
ResultSpec = tuple[str, bytes | None, bool]


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
    task_ids: list[str] = field(default_factory=list)
    result_ids: list[str] = field(default_factory=list)
    active: int = 0  # tasks not yet in a final status


class ControlPlane:
    """Sessions, tasks and results, and the rules that change them."""

    def __init__(
        self,
        *,
        clock: SimClock,
        scheduler: Scheduler,
        bus: EventBus,
        rng: random.Random,
        partitions: Iterable[SimPartition],
        default_profile: TaskProfile,
    ) -> None:
        self.clock = clock
        self.scheduler = scheduler
        self.bus = bus
        self.rng = rng
        self.partitions = {p.partition_id: p for p in partitions}
        self.default_profile = default_profile
        self.sessions: dict[str, SessionState] = {}
        self.tasks: dict[str, SimTask] = {}
        self.results: dict[str, SimResult] = {}
        self.deleted_tasks: dict[str, SimTask] = {}
        self._waiting: dict[str, list[str]] = {}
        self._missing: dict[str, int] = {}
        self._children: dict[str, list[str]] = {}
        self.on_ready: list = []  # callbacks(task) when a task is queued; set by the worker pools
        self.on_release: list = []  # callbacks(task) when a task leaves a worker slot
        self.on_idle: list = []  # callbacks(session_id) when a session has no unfinished task

    # -- time and ids -------------------------------------------------------------------------

    def now(self) -> int:
        """Current simulated time: the running action's time, or the clock's if later."""
        return max(self.clock.now_us(), self.scheduler.current_us)

    def new_id(self) -> str:
        """A deterministic, UUID-shaped identifier."""
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

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
        return [tasks[t] for t in self.session(session_id).task_ids if t in tasks]

    def session_results(self, session_id: str) -> list[SimResult]:
        """Every result of a session, in creation order."""
        results = self.results
        return [results[r] for r in self.session(session_id).result_ids if r in results]

    # -- sessions -----------------------------------------------------------------------------

    def create_session(
        self,
        options: TaskOptions,
        partition_ids: Sequence[str],
        profile: TaskProfile | None = None,
    ) -> SimSession:
        """Create a RUNNING session; every partition must exist."""
        partition_ids = list(partition_ids) or [options.partition_id or self._default_partition()]
        for partition_id in [*partition_ids, options.partition_id]:
            if partition_id and partition_id not in self.partitions:
                raise PlaneError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"partition {partition_id!r} does not exist"
                )
        stored = TaskOptions()
        stored.CopyFrom(options)
        if not stored.partition_id:
            stored.partition_id = partition_ids[0]
        record = SimSession(
            session_id=self.new_id(),
            status=SessionStatus.RUNNING,
            partition_ids=partition_ids,
            options=stored,
            created_at=self.now(),
        )
        self.sessions[record.session_id] = SessionState(record, profile or self.default_profile)
        return record

    def _default_partition(self) -> str:
        return next(iter(self.partitions))

    def _require_status(self, state: SessionState, allowed: set[SessionStatus], verb: str) -> None:
        if state.record.status not in allowed:
            raise PlaneError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"cannot {verb} session {state.record.session_id}: it is "
                f"{state.record.status.name}",
            )

    def pause_session(self, session_id: str) -> SimSession:
        """Pause a running session: queued and dispatched tasks become PAUSED."""
        state = self.session(session_id)
        self._require_status(state, {SessionStatus.RUNNING}, "pause")
        state.record.status = SessionStatus.PAUSED
        for task in self.session_tasks(session_id):
            if task.status in (TaskStatus.SUBMITTED, TaskStatus.DISPATCHED):
                self._release(task)
                self._set_status(task, TaskStatus.PAUSED)
        return state.record

    def resume_session(self, session_id: str) -> SimSession:
        """Resume a paused session: paused tasks are submitted again."""
        state = self.session(session_id)
        self._require_status(state, {SessionStatus.PAUSED}, "resume")
        state.record.status = SessionStatus.RUNNING
        for task in self.session_tasks(session_id):
            if task.status == TaskStatus.PAUSED:
                self._submit(task)
        return state.record

    def cancel_session(self, session_id: str) -> SimSession:
        """Cancel a session and every unfinished task in it."""
        state = self.session(session_id)
        self._require_status(
            state, {SessionStatus.RUNNING, SessionStatus.PAUSED, SessionStatus.CLOSED}, "cancel"
        )
        state.record.status = SessionStatus.CANCELLED
        state.record.cancelled_at = self.now()
        self.cancel_tasks(self.session_tasks(session_id), "session cancelled")
        return state.record

    def close_session(self, session_id: str) -> SimSession:
        """Close a session: no more submissions; running tasks go on."""
        state = self.session(session_id)
        self._require_status(state, {SessionStatus.RUNNING, SessionStatus.PAUSED}, "close")
        state.record.status = SessionStatus.CLOSED
        state.record.closed_at = self.now()
        return state.record

    def purge_session(self, session_id: str) -> SimSession:
        """Drop the data of a closed or cancelled session's results."""
        state = self.session(session_id)
        self._require_status(state, {SessionStatus.CLOSED, SessionStatus.CANCELLED}, "purge")
        state.record.status = SessionStatus.PURGED
        state.record.purged_at = self.now()
        for result in self.session_results(session_id):
            result.data = None
            if result.status == ResultStatus.COMPLETED:
                self._set_result_status(result, ResultStatus.DELETED)
        return state.record

    def delete_session(self, session_id: str) -> SimSession:
        """Delete a session: its tasks and results leave the store; the record stays DELETED."""
        state = self.session(session_id)
        self._require_status(
            state, {SessionStatus.CLOSED, SessionStatus.CANCELLED, SessionStatus.PURGED}, "delete"
        )
        self.cancel_tasks(self.session_tasks(session_id), "session deleted")
        state.record.status = SessionStatus.DELETED
        state.record.deleted_at = self.now()
        for task_id in state.task_ids:
            task = self.tasks.pop(task_id, None)
            if task is not None:
                self.deleted_tasks[task_id] = task
        for result_id in state.result_ids:
            self.results.pop(result_id, None)
        return state.record

    def stop_submission(self, session_id: str, client: bool, worker: bool) -> SimSession:
        """Forbid further submissions by clients and/or workers."""
        record = self.session(session_id).record
        if client:
            record.client_submission = False
        if worker:
            record.worker_submission = False
        return record

    # -- results ------------------------------------------------------------------------------

    def create_results(
        self,
        session_id: str,
        specs: Sequence[ResultSpec],
        created_by: str = "",
    ) -> list[SimResult]:
        """Create results from (name, data or None, manual_deletion); data completes them."""
        state = self.session(session_id)
        self._require_open(state, created_by)
        created = [self._new_result(state, name, data, manual, created_by) for name, data, manual
                   in specs]
        for result in created:
            self.bus.publish_result(ev.NEW_RESULT, result)
        return created

    def _new_result(
        self, state: SessionState, name: str, data: bytes | None, manual: bool, created_by: str
    ) -> SimResult:
        if not name:
            raise PlaneError(grpc.StatusCode.INVALID_ARGUMENT, "result name must not be empty")
        now = self.now()
        result = SimResult(
            result_id=self.new_id(),
            session_id=state.record.session_id,
            name=name,
            owner_task_id="",
            status=ResultStatus.CREATED,
            created_at=now,
            created_by=created_by,
            manual_deletion=manual,
        )
        if data is not None:
            result.data, result.size = data, len(data)
            result.status, result.completed_at = ResultStatus.COMPLETED, now
        self.results[result.result_id] = result
        state.result_ids.append(result.result_id)
        return result

    def upload_result_data(self, session_id: str, result_id: str, data: bytes) -> SimResult:
        """Give data to a result that has none yet; it completes."""
        result = self.result(result_id, session_id)
        if result.status != ResultStatus.CREATED:
            raise PlaneError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"result {result_id} is {result.status.name}, not CREATED",
            )
        result.data, result.size = data, len(data)
        self._complete_result(result)
        return result

    def import_result(self, session_id: str, result_id: str, opaque_id: bytes) -> SimResult:
        """Attach data already in object storage to a result; it completes."""
        result = self.result(result_id, session_id)
        if result.status != ResultStatus.CREATED:
            raise PlaneError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"result {result_id} is {result.status.name}, not CREATED",
            )
        result.opaque_id = opaque_id
        self._complete_result(result)
        return result

    def result_data(self, session_id: str, result_id: str) -> bytes:
        """Return a completed result's data."""
        result = self.result(result_id, session_id)
        if result.status != ResultStatus.COMPLETED:
            raise PlaneError(
                grpc.StatusCode.NOT_FOUND,
                f"result {result_id} has no data: it is {result.status.name}",
            )
        if result.data is None:
            # Simulated outputs carry deterministic bytes of their recorded size.
            return (result_id.encode() * (result.size // 36 + 1))[: result.size]
        return result.data

    def delete_results_data(self, session_id: str, result_ids: Sequence[str]) -> list[str]:
        """Drop the data of completed results; they become DELETED."""
        results = [self.result(r, session_id) for r in result_ids]
        for result in results:
            result.data = None
            if result.status == ResultStatus.COMPLETED:
                self._set_result_status(result, ResultStatus.DELETED)
        return [r.result_id for r in results]

    def _complete_result(self, result: SimResult) -> None:
        result.completed_at = self.now()
        self._set_result_status(result, ResultStatus.COMPLETED)
        for task_id in self._waiting.pop(result.result_id, ()):
            self._missing[task_id] -= 1
            task = self.tasks.get(task_id)
            if self._missing[task_id] == 0 and task and task.status == TaskStatus.PENDING:
                del self._missing[task_id]
                self._submit(task)

    def _abort_result(self, result: SimResult) -> None:
        if result.status != ResultStatus.CREATED:
            return
        self._set_result_status(result, ResultStatus.ABORTED)
        dependents = [self.tasks[t] for t in self._waiting.pop(result.result_id, ())]
        self.cancel_tasks(dependents, f"input {result.result_id} aborted")

    def _set_result_status(self, result: SimResult, status: ResultStatus) -> None:
        result.status = status
        self.bus.publish_result(ev.RESULT_STATUS_UPDATE, result)

    def hand_over(self, result: SimResult, new_owner: SimTask) -> None:
        """Make another task responsible for producing a result (RESULT_OWNER_UPDATE)."""
        previous = result.owner_task_id
        result.owner_task_id = new_owner.task_id
        self.bus.publish_owner_update(result, previous)

    # -- tasks --------------------------------------------------------------------------------

    def submit_tasks(
        self,
        session_id: str,
        default_options: TaskOptions | None,
        creations: Sequence[TaskCreation],
        created_by: str = "",
        parent: SimTask | None = None,
    ) -> list[SimTask]:
        """Create tasks; client tasks are finalized at once, a worker's when its parent ends."""
        state = self.session(session_id)
        self._require_open(state, created_by)
        options = self._merge_options(state.record.options, default_options)
        self._check_creations(session_id, creations)
        tasks = [self._create(state, c, options, created_by, parent) for c in creations]
        if parent is None:
            delay = state.profile.creation.sample_us(self.rng)
            self.scheduler.at(self.now() + delay, self._finalize_many, tasks)
        else:
            self._children.setdefault(parent.task_id, []).extend(t.task_id for t in tasks)
        return tasks

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

    def _merge_options(self, base: TaskOptions, override: TaskOptions | None) -> TaskOptions:
        if override is None or override.ByteSize() == 0:
            return base
        merged = TaskOptions()
        merged.CopyFrom(base)
        merged.MergeFrom(override)
        if override.partition_id and override.partition_id not in self.partitions:
            raise PlaneError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"partition {override.partition_id!r} does not exist",
            )
        return merged

    def _check_creations(self, session_id: str, creations: Sequence[TaskCreation]) -> None:
        for creation in creations:
            ids = [creation.payload_id, *creation.expected_output_ids, *creation.data_dependencies]
            for result_id in ids:
                self.result(result_id, session_id)
            if not creation.expected_output_ids:
                raise PlaneError(
                    grpc.StatusCode.INVALID_ARGUMENT, "a task needs at least one expected output"
                )

    def _create(
        self,
        state: SessionState,
        creation: TaskCreation,
        options: TaskOptions,
        created_by: str,
        parent: SimTask | None,
        retry_of: SimTask | None = None,
    ) -> SimTask:
        task_options = self._merge_options(options, creation.options)
        task_id = self.new_id()
        task = SimTask(
            task_id=task_id,
            session_id=state.record.session_id,
            options=task_options,
            payload_id=creation.payload_id,
            created_by=created_by,
            initial_task_id=retry_of.initial_task_id if retry_of else task_id,
            parent_task_ids=[*parent.parent_task_ids, parent.task_id] if parent else [],
            data_dependencies=list(creation.data_dependencies),
            expected_output_ids=list(creation.expected_output_ids),
            retry_of_ids=[*retry_of.retry_of_ids, retry_of.task_id] if retry_of else [],
            status=TaskStatus.CREATING,
            created_at=self.now(),
            history=[TaskStatus.CREATING],
        )
        if retry_of is not None:
            task.parent_task_ids = list(retry_of.parent_task_ids)
        self.tasks[task_id] = task
        state.task_ids.append(task_id)
        state.active += 1
        for result_id in task.expected_output_ids:
            result = self.results[result_id]
            if result.owner_task_id:
                self.hand_over(result, task)
            else:
                result.owner_task_id = task_id
        self.bus.publish_task(ev.NEW_TASK, task)
        return task

    def _finalize_many(self, tasks: list[SimTask]) -> None:
        for task in tasks:
            self.finalize(task)

    def finalize(self, task: SimTask) -> None:
        """End task creation: PENDING, then queued at once when every input is available."""
        if task.status != TaskStatus.CREATING:
            return
        self._set_status(task, TaskStatus.PENDING)
        missing = [
            r for r in task.data_dependencies if self.results[r].status != ResultStatus.COMPLETED
        ]
        aborted = [r for r in missing if self.results[r].status != ResultStatus.CREATED]
        if aborted:
            status = self.results[aborted[0]].status.name
            self.cancel_tasks([task], f"input {aborted[0]} is {status}")
            return
        if not missing:
            self._submit(task)
            return
        self._missing[task.task_id] = len(missing)
        for result_id in missing:
            self._waiting.setdefault(result_id, []).append(task.task_id)

    def _submit(self, task: SimTask) -> None:
        if self.sessions[task.session_id].record.status == SessionStatus.PAUSED:
            self._set_status(task, TaskStatus.PAUSED)
            return
        task.submitted_at = self.now()
        self._set_status(task, TaskStatus.SUBMITTED)
        profile = self.sessions[task.session_id].profile
        due = task.submitted_at + profile.queue.sample_us(self.rng)
        self.scheduler.at(due, self._enqueue, task, task.generation)

    def _enqueue(self, task: SimTask, generation: int) -> None:
        if task.generation == generation and task.status == TaskStatus.SUBMITTED:
            for callback in self.on_ready:
                callback(task)

    def cancel_tasks(self, tasks: Iterable[SimTask], reason: str = "cancelled") -> list[SimTask]:
        """Cancel every unfinished task given; their outputs and dependents are aborted."""
        cancelled = [t for t in tasks if t.status not in TERMINAL_TASK_STATUSES]
        for task in cancelled:
            if task.status in TERMINAL_TASK_STATUSES:
                continue  # cancelled meanwhile, as a dependent of an earlier one
            self._release(task)
            task.status_message = reason
            self.end(task, TaskStatus.CANCELLED)
        return cancelled

    def _release(self, task: SimTask) -> None:
        task.generation += 1
        for callback in self.on_release:
            callback(task)

    def end(self, task: SimTask, status: TaskStatus, error: str = "") -> None:
        """Give a task its final status; outputs complete or abort, children follow."""
        task.ended_at = self.now()
        task.output_success = status == TaskStatus.COMPLETED
        task.output_error = error
        if error:
            task.status_message = error
        self._set_status(task, status)
        children = [self.tasks[c] for c in self._children.pop(task.task_id, ())]
        if status == TaskStatus.COMPLETED:
            owned = [self.results[r] for r in task.expected_output_ids]
            self._complete_outputs(task, [r for r in owned if r.owner_task_id == task.task_id])
            for child in children:
                self.finalize(child)
            return
        # A failed parent takes back the outputs it handed to children before they are cancelled.
        for result_id in task.expected_output_ids:
            if self.results[result_id].owner_task_id != task.task_id:
                self.hand_over(self.results[result_id], task)
        self.cancel_tasks(children, f"parent {task.task_id} {status.name}")
        if status != TaskStatus.RETRIED:
            for result_id in task.expected_output_ids:
                self._abort_result(self.results[result_id])

    def _complete_outputs(self, task: SimTask, outputs: list[SimResult]) -> None:
        payload = self.results.get(task.payload_id)
        for result in outputs:
            if payload is not None and payload.data is not None:
                result.data = payload.data
                result.size = len(payload.data)
            else:
                result.size = 64
            self._complete_result(result)

    def retry(self, task: SimTask, error: str) -> SimTask:
        """End a failed attempt RETRIED and create the next attempt, which takes its outputs."""
        self.end(task, TaskStatus.RETRIED, error)
        state = self.sessions[task.session_id]
        creation = TaskCreation(task.payload_id, task.expected_output_ids, task.data_dependencies)
        attempt = self._create(state, creation, task.options, task.created_by, None, task)
        self.scheduler.at(self.now() + state.profile.creation.sample_us(self.rng), self.finalize,
                          attempt)
        return attempt

    def _set_status(self, task: SimTask, status: TaskStatus) -> None:
        if not is_allowed_transition(task.status, status):
            raise AssertionError(f"task {task.task_id}: {task.status.name} -> {status.name}")
        task.status = status
        task.history.append(status)
        if status in TERMINAL_TASK_STATUSES:
            state = self.sessions[task.session_id]
            state.active -= 1
            if state.active == 0:
                for callback in self.on_idle:
                    callback(task.session_id)
        self.bus.publish_task(ev.TASK_STATUS_UPDATE, task)

    def set_running_status(self, task: SimTask, status: TaskStatus) -> None:
        """Move a task through DISPATCHED or PROCESSING (used by the worker pools)."""
        self._set_status(task, status)
