"""Tasks service: list, count, get, cancel and submit tasks."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from armonik.protogen.client.tasks_service_pb2_grpc import TasksServicer
from armonik.protogen.common import filters_common_pb2 as filters_pb
from armonik.protogen.common import objects_pb2, sort_direction_pb2
from armonik.protogen.common import tasks_common_pb2 as pb
from armonik.protogen.common import tasks_fields_pb2 as fields_pb

from armonik_observe.simulator import convert
from armonik_observe.simulator.plane import ControlPlane, TaskCreation
from armonik_observe.simulator.query import Entity, compile_filters, paginate, run_list_query
from armonik_observe.simulator.records import SimTask
from armonik_observe.simulator.services.base import PlaneServicer, invalid, unary

_SESSION_ID = fields_pb.TASK_SUMMARY_ENUM_FIELD_SESSION_ID
_ENDED_AT = fields_pb.TASK_SUMMARY_ENUM_FIELD_ENDED_AT
_EQUAL = filters_pb.FILTER_STRING_OPERATOR_EQUAL
_AFTER_OR_EQUAL = filters_pb.FILTER_DATE_OPERATOR_AFTER_OR_EQUAL
_ASC = sort_direction_pb2.SORT_DIRECTION_ASC
_SORT_CACHE_SIZE = 16


class Tasks(PlaneServicer, TasksServicer):
    """Task queries and submission."""

    def __init__(self, plane: ControlPlane) -> None:
        super().__init__(plane)
        self._sorted: dict[tuple[bytes, bytes], tuple[tuple[int, ...], list[SimTask]]] = {}

    def candidates(self, filters: Any) -> Iterable[SimTask]:
        """The tasks a filter can match: a session's tasks when every branch names one."""
        sessions = _sessions_named(filters)
        if sessions is None:
            return self.plane.tasks.values()
        known = [s for s in sessions if s in self.plane.sessions]
        return [task for s in known for task in self.plane.session_tasks(s)]

    def _page(self, request: Any) -> tuple[list[SimTask], int]:
        if not request.HasField("sort"):
            raise invalid("sort must be set")
        since = _ended_since_by_end(request)
        if since is not None:
            return self._ended_since(since, request.page, request.page_size)
        if _sessions_named(request.filters) is not None:
            return paginate(self._sorted_in_sessions(request), request.page, request.page_size)
        return run_list_query(
            self.candidates(request.filters), Entity.TASK, request.filters, request.sort.field,
            request.sort.direction, request.page, request.page_size,
        )

    def _sorted_in_sessions(self, request: Any) -> list[SimTask]:
        """Every match of a session-scoped query, sorted; kept while those sessions are still.

        Clients page through a session's tasks one request per page: sorting the whole session
        again for each page would make the pass quadratic.
        """
        sessions = sorted(_sessions_named(request.filters) or ())
        states = self.plane.sessions
        versions = tuple(states[s].version if s in states else -1 for s in sessions)
        key = (request.filters.SerializeToString(), request.sort.SerializeToString())
        cached = self._sorted.get(key)
        if cached is not None and cached[0] == versions:
            return cached[1]
        filters = None if _only_names_sessions(request.filters) else request.filters
        candidates = list(self.candidates(request.filters))
        ordered, _ = run_list_query(candidates, Entity.TASK, filters, request.sort.field,
                                    request.sort.direction, 0, len(candidates))
        if len(self._sorted) >= _SORT_CACHE_SIZE:
            self._sorted.pop(next(iter(self._sorted)))
        self._sorted[key] = (versions, ordered)
        return ordered

    def _ended_since(self, since: int, page: int, page_size: int) -> tuple[list[SimTask], int]:
        """Tasks ended at or after `since`, oldest end first, read off the ended index."""
        if page < 0 or page_size < 0:
            raise invalid("page and page_size must not be negative")
        return self.plane.ended.since(since, page, page_size, self.plane.tasks)

    @unary
    def ListTasks(self, request: Any, context: Any) -> Any:
        page, total = self._page(request)
        return convert.list_tasks_response(
            page, request.with_errors, request.page, request.page_size, total
        )

    @unary
    def ListTasksDetailed(self, request: Any, context: Any) -> Any:
        page, total = self._page(request)
        return pb.ListTasksDetailedResponse(
            tasks=[convert.task_detailed(t) for t in page],
            page=request.page, page_size=request.page_size, total=total,
        )

    @unary
    def GetTask(self, request: Any, context: Any) -> Any:
        return pb.GetTaskResponse(task=convert.task_detailed(self.plane.task(request.task_id)))

    @unary
    def CancelTasks(self, request: Any, context: Any) -> Any:
        tasks = [self.plane.task(task_id) for task_id in request.task_ids]
        self.plane.cancel_tasks(tasks, "cancelled by the client")
        return pb.CancelTasksResponse(tasks=[convert.task_summary(t) for t in tasks])

    @unary
    def GetResultIds(self, request: Any, context: Any) -> Any:
        tasks = [self.plane.task(task_id) for task_id in request.task_id]
        return pb.GetResultIdsResponse(
            task_results=[
                pb.GetResultIdsResponse.MapTaskResult(
                    task_id=t.task_id, result_ids=t.expected_output_ids
                )
                for t in tasks
            ]
        )

    @unary
    def CountTasksByStatus(self, request: Any, context: Any) -> Any:
        matches = compile_filters(Entity.TASK, request.filters)
        counts = Counter(t.status for t in self.candidates(request.filters) if matches(t))
        # Sparse, as on the real server: only statuses that have tasks.
        return pb.CountTasksByStatusResponse(
            status=[
                objects_pb2.StatusCount(status=int(status), count=count)
                for status, count in sorted(counts.items())
            ]
        )

    @unary
    def SubmitTasks(self, request: Any, context: Any) -> Any:
        if not request.task_creations:
            raise invalid("task_creations must not be empty")
        creations = [
            TaskCreation(
                payload_id=c.payload_id,
                expected_output_ids=list(c.expected_output_keys),
                data_dependencies=list(c.data_dependencies),
                options=c.task_options if c.HasField("task_options") else None,
            )
            for c in request.task_creations
        ]
        options = request.task_options if request.HasField("task_options") else None
        tasks = self.plane.submit_tasks(request.session_id, options, creations)
        return pb.SubmitTasksResponse(
            task_infos=[
                pb.SubmitTasksResponse.TaskInfo(
                    task_id=t.task_id,
                    expected_output_ids=t.expected_output_ids,
                    data_dependencies=t.data_dependencies,
                    payload_id=t.payload_id,
                )
                for t in tasks
            ]
        )


def _ended_since_by_end(request: Any) -> int | None:
    """`since` when the request is exactly "ended_at >= since, sorted by ended_at ascending"."""
    sort = request.sort
    if (
        sort.field.WhichOneof("field") != "task_summary_field"
        or sort.field.task_summary_field.field != _ENDED_AT
        or sort.direction != _ASC
    ):
        return None
    branches = getattr(request.filters, "or")
    if len(branches) != 1 or len(getattr(branches[0], "and")) != 1:
        return None
    (condition,) = getattr(branches[0], "and")
    if (
        condition.field.WhichOneof("field") != "task_summary_field"
        or condition.field.task_summary_field.field != _ENDED_AT
        or condition.WhichOneof("value_condition") != "filter_date"
        or condition.filter_date.operator != _AFTER_OR_EQUAL
    ):
        return None
    return convert.timestamp_micros(condition.filter_date.value)


def _only_names_sessions(filters: Any) -> bool:
    """True when every branch is a single session_id equality, fully served by candidates()."""
    branches = getattr(filters, "or")
    return bool(branches) and all(
        len(getattr(branch, "and")) == 1 for branch in branches
    ) and _sessions_named(filters) is not None


def _sessions_named(filters: Any) -> set[str] | None:
    """Session ids that every OR branch requires by equality, or None when one does not."""
    named: set[str] = set()
    branches = getattr(filters, "or")
    if not branches:
        return None
    for branch in branches:
        ids = [
            f.filter_string.value
            for f in getattr(branch, "and")
            if f.field.WhichOneof("field") == "task_summary_field"
            and f.field.task_summary_field.field == _SESSION_ID
            and f.WhichOneof("value_condition") == "filter_string"
            and f.filter_string.operator == _EQUAL
        ]
        if not ids:
            return None
        named.add(ids[0])
    return named
