"""The calls benchmarks make to a (simulated) control plane: its newest running session, and
how many tasks a session holds."""

from __future__ import annotations

import time
from typing import Any

import grpc
from armonik.protogen.client.sessions_service_pb2_grpc import SessionsStub
from armonik.protogen.client.tasks_service_pb2_grpc import TasksStub
from armonik.protogen.common import session_status_pb2 as ss
from armonik.protogen.common import sessions_common_pb2 as sc
from armonik.protogen.common import sessions_fields_pb2 as sf
from armonik.protogen.common import sort_direction_pb2 as sd
from armonik.protogen.common import tasks_common_pb2 as tc
from armonik.protogen.common import tasks_fields_pb2 as tf
from armonik.protogen.common import tasks_filters_pb2 as tflt
from armonik.protogen.common.filters_common_pb2 import FILTER_STRING_OPERATOR_EQUAL, FilterString

from bench.common import BenchError


def session_filter(session_id: str) -> Any:
    """Tasks filters selecting one session."""
    field = tf.TaskField(
        task_summary_field=tf.TaskSummaryField(field=tf.TASK_SUMMARY_ENUM_FIELD_SESSION_ID)
    )
    condition = tflt.FilterField(
        field=field,
        filter_string=FilterString(value=session_id, operator=FILTER_STRING_OPERATOR_EQUAL),
    )
    return tflt.Filters(**{"or": [tflt.FiltersAnd(**{"and": [condition]})]})


def running_session(channel: grpc.Channel, timeout: float = 10.0) -> str:
    """The newest RUNNING session, waiting up to `timeout` seconds for one to open."""
    request = sc.ListSessionsRequest(
        page=0, page_size=100,
        sort=sc.ListSessionsRequest.Sort(
            field=sf.SessionField(session_raw_field=sf.SessionRawField(
                field=sf.SESSION_RAW_ENUM_FIELD_CREATED_AT)),
            direction=sd.SORT_DIRECTION_DESC))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for session in SessionsStub(channel).ListSessions(request, timeout=5).sessions:
            if session.status == ss.SESSION_STATUS_RUNNING:
                return str(session.session_id)
        time.sleep(0.05)
    raise BenchError("the control plane opened no RUNNING session")


def count_tasks(channel: grpc.Channel, session_id: str) -> tuple[int, float]:
    """How many tasks the session holds, and the monotonic time the answer arrived."""
    response = TasksStub(channel).CountTasksByStatus(
        tc.CountTasksByStatusRequest(filters=session_filter(session_id)), timeout=30
    )
    return sum(s.count for s in response.status), time.monotonic()
