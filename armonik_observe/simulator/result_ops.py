"""Result operations: create, upload, import, download, delete, complete, abort, hand over."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from armonik_observe.model import ResultStatus
from armonik_observe.simulator import events as ev
from armonik_observe.simulator.records import SimResult, SimTask
from armonik_observe.simulator.store import PlaneError, PlaneStore, ResultSpec, SessionState


class ResultOperations(PlaneStore):
    """Results follow their owner task; payloads are results too."""

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
        state.results[result.result_id] = result
        return result

    def _awaiting_data(self, session_id: str, result_id: str) -> SimResult:
        """A result that can still receive data (CREATED), or FAILED_PRECONDITION."""
        result = self.result(result_id, session_id)
        if result.status != ResultStatus.CREATED:
            raise PlaneError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"result {result_id} is {result.status.name}, not CREATED",
            )
        return result

    def upload_result_data(self, session_id: str, result_id: str, data: bytes) -> SimResult:
        """Give data to a result that has none yet; it completes."""
        result = self._awaiting_data(session_id, result_id)
        result.data, result.size = data, len(data)
        self._complete_result(result)
        return result

    def import_result(self, session_id: str, result_id: str, opaque_id: bytes) -> SimResult:
        """Attach data already in object storage to a result; it completes."""
        result = self._awaiting_data(session_id, result_id)
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
            if self._missing[task_id] == 0:
                del self._missing[task_id]
                self._submit(self.tasks[task_id])

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

