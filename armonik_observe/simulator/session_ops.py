"""Session operations: create, pause, resume, cancel, close, purge, delete, stop submission."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from armonik.protogen.common.objects_pb2 import TaskOptions

from armonik_observe.model import ResultStatus, SessionStatus, TaskStatus
from armonik_observe.simulator.profile import TaskProfile
from armonik_observe.simulator.records import SimSession
from armonik_observe.simulator.result_ops import ResultOperations
from armonik_observe.simulator.store import PlaneError, SessionState


class SessionOperations(ResultOperations):
    """What clients do to sessions, with the real server's preconditions."""

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
        state.version += 1
        # Every task has ended by now; they stay in the session's state until they expire.
        for task in self.session_tasks(session_id):
            del self.tasks[task.task_id]
            self.deleted_tasks[task.task_id] = task
            self.ended.mark_deleted(task)
        for result_id in state.results:
            del self.results[result_id]
        state.results.clear()
        return state.record

    def stop_submission(self, session_id: str, client: bool, worker: bool) -> SimSession:
        """Forbid further submissions by clients and/or workers."""
        record = self.session(session_id).record
        if client:
            record.client_submission = False
        if worker:
            record.worker_submission = False
        return record

