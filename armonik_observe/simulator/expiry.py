"""Data retention: the plane forgets what has ended, as a real control plane's TTL index does.

- A task goes `ttl` after it ends (at ended_at + ttl) whatever its session's state, a deleted
  session's tasks too; a task that has not ended never goes.
- A result goes with the last task that names it (as its payload, an expected output or an
  input); a result no task names stays as long as its session.
- A session goes once it holds no task and takes no more (it is neither RUNNING nor PAUSED):
  when its last task goes, or `ttl` after it is closed or cancelled if it holds none by then.
  An open session stays, since its client may still submit.

Nothing is announced: as on a real control plane, what has expired is simply not found any
more. One upkeep action is pending at a time, due when the oldest end reaches the TTL.
"""

from __future__ import annotations

from armonik_observe.model import SessionStatus
from armonik_observe.simulator.records import SimSession, SimTask
from armonik_observe.simulator.session_ops import SessionOperations
from armonik_observe.simulator.store import SessionState

_OPEN = frozenset({SessionStatus.RUNNING, SessionStatus.PAUSED})


def named_results(task: SimTask) -> set[str]:
    """The results a task names: its payload, its expected outputs and its inputs."""
    return {task.payload_id, *task.expected_output_ids, *task.data_dependencies}


class Retention(SessionOperations):
    """Expires ended tasks, then the results and sessions nothing holds any more."""

    def _index_end(self, task: SimTask) -> None:
        """Index a task that has just ended; its expiry follows the ones before it."""
        self.ended.append(task)
        if not self._expiry_scheduled:
            self._schedule_expiry(task)

    def _schedule_expiry(self, oldest: SimTask) -> None:
        self._expiry_scheduled = True
        self.scheduler.upkeep_at((oldest.ended_at or 0) + self.ttl_us, self._expire_due)

    def _expire_due(self) -> None:
        horizon = self.now() - self.ttl_us
        ended = self.ended
        while (task := ended.oldest()) is not None and (task.ended_at or 0) <= horizon:
            self._expire_task(task)
        self._expiry_scheduled = False
        if task is not None:
            self._schedule_expiry(task)

    def _expire_task(self, task: SimTask) -> None:
        state = self.sessions[task.session_id]
        del state.tasks[task.task_id]
        state.version += 1
        deleted = self.tasks.pop(task.task_id, None) is None
        self.ended.pop_oldest(deleted)
        if deleted:
            del self.deleted_tasks[task.task_id]  # its results went with the session's deletion
        else:
            self._release_results(state, task)
        self.expired_tasks += 1
        self._expire_session_if_done(state)

    def _release_results(self, state: SessionState, task: SimTask) -> None:
        for result_id in named_results(task):
            result = state.results[result_id]
            result.task_refs -= 1
            if result.task_refs == 0:
                del state.results[result_id]
                del self.results[result_id]

    def _expire_session_if_done(self, state: SessionState) -> None:
        session_id = state.record.session_id
        gone = self.sessions.get(session_id) is not state  # a pending check of one gone already
        if gone or state.tasks or state.record.status in _OPEN:
            return
        for result_id in state.results:
            del self.results[result_id]
        del self.sessions[session_id]
        self.expired_sessions += 1

    def _expire_if_still_empty(self, session_id: str) -> None:
        state = self.sessions.get(session_id)
        if state is not None:
            self._expire_session_if_done(state)

    def _closed(self, record: SimSession) -> SimSession:
        """A session stopped taking tasks: one that holds none goes `ttl` later."""
        if not self.sessions[record.session_id].tasks:
            self.scheduler.upkeep_at(self.now() + self.ttl_us, self._expire_if_still_empty,
                                     record.session_id)
        return record

    def close_session(self, session_id: str) -> SimSession:
        """Close a session (see SessionOperations); an empty one expires `ttl` later."""
        return self._closed(super().close_session(session_id))

    def cancel_session(self, session_id: str) -> SimSession:
        """Cancel a session (see SessionOperations); an empty one expires `ttl` later."""
        return self._closed(super().cancel_session(session_id))
