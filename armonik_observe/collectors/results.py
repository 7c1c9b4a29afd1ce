"""Results of ended sessions: one ListResults sweep per session once it stops taking work.

Results only matter to the archive. A session's results are read once, when discovery's change
feed shows it cancelled, closed or purged, paged 1,000 at a time; sessions that ended before the
task-facts start point are left alone, like their tasks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from armonik.protogen.client.results_service_pb2_grpc import ResultsStub
from armonik.protogen.common import filters_common_pb2 as filters
from armonik.protogen.common import results_common_pb2 as results
from armonik.protogen.common import results_fields_pb2 as result_fields
from armonik.protogen.common import results_filters_pb2 as result_filters
from armonik.protogen.common import sort_direction_pb2 as direction

from armonik_observe.collectors import convert
from armonik_observe.collectors.poller import Poller, Publish
from armonik_observe.collectors.retry import Connection
from armonik_observe.model import ResultRecord, SessionInfo
from armonik_observe.pipeline import Batch

PAGE_SIZE = 1000
ENDED = frozenset({"CANCELLED", "CLOSED", "PURGED"})
SWEPT_MEMORY = 100_000  # session ids remembered as swept, at most
MAX_SWEEP_FAILURES = 5  # a session whose sweep fails this often is given up
log = logging.getLogger(__name__)
# Errors that say the plane, not the session, is the trouble: every sweep waits for it.
_PLANE_DOWN = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                         grpc.StatusCode.CANCELLED})


def result_record(result: Any) -> ResultRecord:
    """Convert a ResultRaw."""
    return ResultRecord(
        session_id=result.session_id,
        result_id=result.result_id,
        name=result.name,
        owner_task_id=result.owner_task_id,
        status=convert.result_status(result.status),
        created_at=convert.micros(result, "created_at"),
        completed_at=convert.micros(result, "completed_at"),
        size=result.size,
        created_by=result.created_by,
        opaque_id=bytes(result.opaque_id).hex(),
        manual_deletion=result.manual_deletion,
    )


def _results_of(session_id: str, page: int) -> Any:
    field = result_fields.ResultField(
        result_raw_field=result_fields.ResultRawField(
            field=result_fields.RESULT_RAW_ENUM_FIELD_CREATED_AT
        )
    )
    session_field = result_fields.ResultField(
        result_raw_field=result_fields.ResultRawField(
            field=result_fields.RESULT_RAW_ENUM_FIELD_SESSION_ID
        )
    )
    condition = result_filters.FilterField(
        field=session_field,
        filter_string=filters.FilterString(
            value=session_id, operator=filters.FILTER_STRING_OPERATOR_EQUAL
        ),
    )
    return results.ListResultsRequest(
        page=page,
        page_size=PAGE_SIZE,
        filters=result_filters.Filters(
            **{"or": [result_filters.FiltersAnd(**{"and": [condition]})]}
        ),
        sort=results.ListResultsRequest.Sort(field=field, direction=direction.SORT_DIRECTION_ASC),
    )


class ResultsSweeper(Poller):
    """Reads every result of each session that ended since the start point, once."""

    name = "results"
    rpcs = ("ListResults",)

    def __init__(
        self,
        *,
        connection: Connection,
        publish: Publish,
        interval: float,
        start_point: Callable[[], int | None],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(connection=connection, publish=publish, interval=interval,
                         monotonic=monotonic)
        self._start_point = start_point
        self._due: dict[str, SessionInfo] = {}  # ended sessions not swept yet
        self._failures: dict[str, int] = {}  # sweeps failed, of sessions due
        self._swept: dict[str, None] = {}

    def note(self, sessions: list[SessionInfo]) -> None:
        """Sessions that changed (discovery's change feed): those that ended become due."""
        for session in sessions:
            if session.status in ENDED and session.session_id not in self._swept:
                self._due[session.session_id] = session

    def remembered(self) -> int:
        """Sessions due or remembered as swept (at most SWEPT_MEMORY of those)."""
        return len(self._due) + len(self._swept)

    async def poll_once(self) -> None:
        """Sweep the sessions that ended since the start point and were not swept yet."""
        start = self._start_point()
        if start is None:
            return  # the task facts have not placed their start point yet
        for session_id, session in list(self._due.items()):
            ended = session.ended_at
            if ended is not None and ended >= start:
                try:
                    await self._sweep(session_id)
                except grpc.aio.AioRpcError as error:
                    if error.code() not in _PLANE_DOWN:  # this session's own trouble
                        self._sweep_failed(session_id)
                    raise
            del self._due[session_id]

    def _sweep_failed(self, session_id: str) -> None:
        """A sweep failed: the session goes behind the others, and is given up after a few
        tries (its results are then not archived; the task facts still are)."""
        session = self._due.pop(session_id)
        self._failures[session_id] = failures = self._failures.get(session_id, 0) + 1
        if failures < MAX_SWEEP_FAILURES:
            self._due[session_id] = session
            return
        del self._failures[session_id]
        log.warning("results of session %s not archived: %d sweeps failed", session_id, failures)

    async def _page(self, session_id: str, page: int) -> Any:
        return await self.connection.unary(
            ResultsStub, "ListResults", _results_of(session_id, page)
        )

    async def _sweep(self, session_id: str) -> None:
        page, read = 0, 0
        while True:
            reply = await self._page(session_id, page)
            records = [result_record(r) for r in reply.results]
            if records:
                self.publish(Batch(results=records))
            read += len(records)
            page += 1
            if read >= reply.total or not records:
                break
        self._swept[session_id] = None
        self._failures.pop(session_id, None)
        if len(self._swept) > SWEPT_MEMORY:
            del self._swept[next(iter(self._swept))]
