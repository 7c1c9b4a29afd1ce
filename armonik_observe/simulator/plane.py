"""The simulated control plane: the task state machine on top of the store and its operations.

Services call the client operations; the worker pools and the workload drive task execution.
Every status change goes through `_set_status`, which checks the real state machine, keeps the
task's history and publishes the event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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
from armonik_observe.simulator.expiry import Retention, named_results
from armonik_observe.simulator.records import SimResult, SimTask
from armonik_observe.simulator.store import (
    PlaneError,
    ResultSpec,
    SessionState,
    TaskCreation,
)

__all__ = ["ControlPlane", "PlaneError", "ResultSpec", "TaskCreation"]


class ControlPlane(Retention):
    """Sessions, tasks and results, and the rules that change them."""

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
        state.tasks[task_id] = task
        for result_id in named_results(task):
            self.results[result_id].task_refs += 1
        state.active += 1
        state.version += 1
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
        self._index_end(task)
        self._stop_waiting(task)
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

    def _stop_waiting(self, task: SimTask) -> None:
        """An ended task no longer waits for its inputs."""
        if self._missing.pop(task.task_id, None) is None:
            return
        for result_id in task.data_dependencies:
            waiting = self._waiting.get(result_id)
            if waiting is not None and task.task_id in waiting:
                waiting.remove(task.task_id)
                if not waiting:
                    del self._waiting[result_id]

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
        self.sessions[task.session_id].version += 1
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
