"""Request builders: the filters and sorts the collectors send, in one place."""

from __future__ import annotations

from typing import Any

from armonik.protogen.common import filters_common_pb2 as filters
from armonik.protogen.common import partitions_common_pb2 as partitions
from armonik.protogen.common import partitions_fields_pb2 as partition_fields
from armonik.protogen.common import sessions_common_pb2 as sessions
from armonik.protogen.common import sessions_fields_pb2 as session_fields
from armonik.protogen.common import sessions_filters_pb2 as session_filters
from armonik.protogen.common import sort_direction_pb2 as direction
from armonik.protogen.common import tasks_common_pb2 as tasks
from armonik.protogen.common import tasks_fields_pb2 as task_fields
from armonik.protogen.common import tasks_filters_pb2 as task_filters
from google.protobuf.timestamp_pb2 import Timestamp

ASC = direction.SORT_DIRECTION_ASC
DESC = direction.SORT_DIRECTION_DESC


def _summary_field(field: int) -> Any:
    return task_fields.TaskField(task_summary_field=task_fields.TaskSummaryField(field=field))


def _task_filters(*conditions: Any) -> Any:
    """Tasks filters with one AND branch of the given conditions."""
    return task_filters.Filters(**{"or": [task_filters.FiltersAnd(**{"and": list(conditions)})]})


def task_session_is(session_id: str) -> Any:
    """Condition: the task belongs to the session."""
    return task_filters.FilterField(
        field=_summary_field(task_fields.TASK_SUMMARY_ENUM_FIELD_SESSION_ID),
        filter_string=filters.FilterString(
            value=session_id, operator=filters.FILTER_STRING_OPERATOR_EQUAL
        ),
    )


def task_partition_is(partition_id: str) -> Any:
    """Condition: the task's partition_id option equals the partition."""
    field = task_fields.TaskField(
        task_option_field=task_fields.TaskOptionField(
            field=task_fields.TASK_OPTION_ENUM_FIELD_PARTITION_ID
        )
    )
    return task_filters.FilterField(
        field=field,
        filter_string=filters.FilterString(
            value=partition_id, operator=filters.FILTER_STRING_OPERATOR_EQUAL
        ),
    )


def task_ended_since(micros: int) -> Any:
    """Condition: the task ended at or after the time."""
    seconds, rest = divmod(micros, 1_000_000)
    return task_filters.FilterField(
        field=_summary_field(task_fields.TASK_SUMMARY_ENUM_FIELD_ENDED_AT),
        filter_date=filters.FilterDate(
            value=Timestamp(seconds=seconds, nanos=rest * 1000),
            operator=filters.FILTER_DATE_OPERATOR_AFTER_OR_EQUAL,
        ),
    )


def count_tasks(*conditions: Any) -> Any:
    """A CountTasksByStatus request over the tasks matching every condition."""
    return tasks.CountTasksByStatusRequest(filters=_task_filters(*conditions))


def list_tasks_ended_since(micros: int, page: int, page_size: int) -> Any:
    """A ListTasks page of tasks that ended since the time, oldest end first."""
    return tasks.ListTasksRequest(
        page=page,
        page_size=page_size,
        filters=_task_filters(task_ended_since(micros)),
        sort=tasks.ListTasksRequest.Sort(
            field=_summary_field(task_fields.TASK_SUMMARY_ENUM_FIELD_ENDED_AT), direction=ASC
        ),
        with_errors=True,
    )


def _session_field(field: int) -> Any:
    return session_fields.SessionField(
        session_raw_field=session_fields.SessionRawField(field=field)
    )


def _session_filters(*branches: Any) -> Any:
    """Sessions filters: an OR of branches, each one condition."""
    return session_filters.Filters(
        **{"or": [session_filters.FiltersAnd(**{"and": [branch]}) for branch in branches]}
    )


def _session_status_is(status: int) -> Any:
    return session_filters.FilterField(
        field=_session_field(session_fields.SESSION_RAW_ENUM_FIELD_STATUS),
        filter_status=session_filters.FilterStatus(
            value=status, operator=filters.FILTER_STATUS_OPERATOR_EQUAL
        ),
    )


def _session_date_since(field: int, micros: int) -> Any:
    seconds, rest = divmod(micros, 1_000_000)
    return session_filters.FilterField(
        field=_session_field(field),
        filter_date=filters.FilterDate(
            value=Timestamp(seconds=seconds, nanos=rest * 1000),
            operator=filters.FILTER_DATE_OPERATOR_AFTER_OR_EQUAL,
        ),
    )


# The dates of a session's life cycle: any of them at or after a time means it changed since.
SESSION_DATES = (
    session_fields.SESSION_RAW_ENUM_FIELD_CREATED_AT,
    session_fields.SESSION_RAW_ENUM_FIELD_CANCELLED_AT,
    session_fields.SESSION_RAW_ENUM_FIELD_CLOSED_AT,
    session_fields.SESSION_RAW_ENUM_FIELD_PURGED_AT,
    session_fields.SESSION_RAW_ENUM_FIELD_DELETED_AT,
)


def list_sessions(page: int, page_size: int, filters: Any = None, newest_first: bool = True,
                  ) -> Any:
    """A ListSessions page with task options, by creation date."""
    return sessions.ListSessionsRequest(
        page=page,
        page_size=page_size,
        filters=filters,
        sort=sessions.ListSessionsRequest.Sort(
            field=_session_field(session_fields.SESSION_RAW_ENUM_FIELD_CREATED_AT),
            direction=DESC if newest_first else ASC,
        ),
        with_task_options=True,
    )


def list_sessions_in(statuses: tuple[int, ...], page: int, page_size: int) -> Any:
    """A page of the sessions in one of the statuses (a server-side filter), newest first."""
    return list_sessions(page, page_size, _session_filters(*map(_session_status_is, statuses)))


def list_sessions_changed_since(micros: int, page: int, page_size: int) -> Any:
    """A page of the sessions created, cancelled, closed, purged or deleted since the time,
    oldest first (so that sessions created while paging only add pages at the end)."""
    since = [_session_date_since(field, micros) for field in SESSION_DATES]
    return list_sessions(page, page_size, _session_filters(*since), newest_first=False)


def count_sessions_in(status: int) -> Any:
    """A one-session page of the sessions in a status: its `total` is their count."""
    return list_sessions(0, 1, _session_filters(_session_status_is(status)))


def list_partitions(page: int, page_size: int) -> Any:
    """A ListPartitions page sorted by id."""
    field = partition_fields.PartitionField(
        partition_raw_field=partition_fields.PartitionRawField(
            field=partition_fields.PARTITION_RAW_ENUM_FIELD_ID
        )
    )
    return partitions.ListPartitionsRequest(
        page=page, page_size=page_size,
        sort=partitions.ListPartitionsRequest.Sort(field=field, direction=ASC),
    )


def _task_created(micros: int, operator: int) -> Any:
    seconds, rest = divmod(micros, 1_000_000)
    return task_filters.FilterField(
        field=_summary_field(task_fields.TASK_SUMMARY_ENUM_FIELD_CREATED_AT),
        filter_date=filters.FilterDate(
            value=Timestamp(seconds=seconds, nanos=rest * 1000), operator=operator),
    )


def task_created_since(micros: int) -> Any:
    """Condition: the task was created at or after the time."""
    return _task_created(micros, filters.FILTER_DATE_OPERATOR_AFTER_OR_EQUAL)


def task_created_before(micros: int) -> Any:
    """Condition: the task was created before the time."""
    return _task_created(micros, filters.FILTER_DATE_OPERATOR_BEFORE)


def task_application_is(name: str) -> Any:
    """Condition: the task's application_name option equals the name."""
    field = task_fields.TaskField(
        task_option_field=task_fields.TaskOptionField(
            field=task_fields.TASK_OPTION_ENUM_FIELD_APPLICATION_NAME
        )
    )
    return task_filters.FilterField(
        field=field,
        filter_string=filters.FilterString(
            value=name, operator=filters.FILTER_STRING_OPERATOR_EQUAL
        ),
    )


def list_tasks_created(conditions: list[Any], page: int, page_size: int) -> Any:
    """A ListTasks page of the tasks matching every condition, oldest creation first."""
    return tasks.ListTasksRequest(
        page=page,
        page_size=page_size,
        filters=_task_filters(*conditions),
        sort=tasks.ListTasksRequest.Sort(
            field=_summary_field(task_fields.TASK_SUMMARY_ENUM_FIELD_CREATED_AT), direction=ASC
        ),
        with_errors=True,
    )
