"""List-request evaluation over simulator records: filters, event validation, sort and paging."""

from __future__ import annotations

from typing import Any

import pytest
from armonik.protogen.common import (
    applications_fields_pb2,
    applications_filters_pb2,
    filters_common_pb2,
    objects_pb2,
    partitions_fields_pb2,
    partitions_filters_pb2,
    results_fields_pb2,
    results_filters_pb2,
    sessions_fields_pb2,
    sessions_filters_pb2,
    sort_direction_pb2,
    tasks_fields_pb2,
    tasks_filters_pb2,
)
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from armonik_observe.model import ResultStatus, SessionStatus, TaskStatus
from armonik_observe.simulator.query import (
    Application,
    Entity,
    QueryError,
    applications_of,
    compile_filters,
    event_filter_violation,
    match_all,
    paginate,
    run_list_query,
    sort_key,
    sort_records,
)
from armonik_observe.simulator.records import SimPartition, SimResult, SimSession, SimTask

ASC = sort_direction_pb2.SORT_DIRECTION_ASC
DESC = sort_direction_pb2.SORT_DIRECTION_DESC
T0 = 1_700_000_000_000_000

# ------------------------------------------------------------------------------ record builders


def options(**kw: Any) -> objects_pb2.TaskOptions:
    return objects_pb2.TaskOptions(**kw)


def task(task_id: str, **kw: Any) -> SimTask:
    fields: dict[str, Any] = {
        "session_id": "s1", "options": options(), "payload_id": f"p-{task_id}",
        "created_by": "", "initial_task_id": task_id, "parent_task_ids": [],
        "data_dependencies": [], "expected_output_ids": [], "retry_of_ids": [],
        "status": TaskStatus.SUBMITTED, "created_at": T0,
    }  # fmt: skip
    fields.update(kw)
    return SimTask(task_id=task_id, **fields)


def session(session_id: str, **kw: Any) -> SimSession:
    fields: dict[str, Any] = {
        "status": SessionStatus.RUNNING, "partition_ids": ["default"], "options": options(),
        "created_at": T0,
    }  # fmt: skip
    fields.update(kw)
    return SimSession(session_id=session_id, **fields)


def result(result_id: str, **kw: Any) -> SimResult:
    fields: dict[str, Any] = {
        "session_id": "s1", "name": f"n-{result_id}", "owner_task_id": "t",
        "status": ResultStatus.CREATED, "created_at": T0,
    }  # fmt: skip
    fields.update(kw)
    return SimResult(result_id=result_id, **fields)


def partition(partition_id: str, **kw: Any) -> SimPartition:
    fields: dict[str, Any] = {"pod_max": 10, "pod_reserved": 1, "priority": 1}
    fields.update({"preemption_percentage": 0, **kw})
    return SimPartition(partition_id=partition_id, **fields)


# ------------------------------------------------------------------------------ message builders


def ts(micros: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromMicroseconds(micros)
    return stamp


def dur(micros: int) -> Duration:
    value = Duration()
    value.FromMicroseconds(micros)
    return value


def task_field(name: str) -> tasks_fields_pb2.TaskField:
    number = tasks_fields_pb2.TaskSummaryEnumField.Value(f"TASK_SUMMARY_ENUM_FIELD_{name}")
    return tasks_fields_pb2.TaskField(
        task_summary_field=tasks_fields_pb2.TaskSummaryField(field=number)
    )


def task_option(name: str) -> tasks_fields_pb2.TaskField:
    number = tasks_fields_pb2.TaskOptionEnumField.Value(f"TASK_OPTION_ENUM_FIELD_{name}")
    return tasks_fields_pb2.TaskField(
        task_option_field=tasks_fields_pb2.TaskOptionField(field=number)
    )


def task_generic(key: str) -> tasks_fields_pb2.TaskField:
    generic = tasks_fields_pb2.TaskOptionGenericField(field=key)
    return tasks_fields_pb2.TaskField(task_option_generic_field=generic)


def session_field(name: str) -> sessions_fields_pb2.SessionField:
    number = sessions_fields_pb2.SessionRawEnumField.Value(f"SESSION_RAW_ENUM_FIELD_{name}")
    raw = sessions_fields_pb2.SessionRawField(field=number)
    return sessions_fields_pb2.SessionField(session_raw_field=raw)


def result_field(name: str) -> results_fields_pb2.ResultField:
    number = results_fields_pb2.ResultRawEnumField.Value(f"RESULT_RAW_ENUM_FIELD_{name}")
    return results_fields_pb2.ResultField(
        result_raw_field=results_fields_pb2.ResultRawField(field=number)
    )


def partition_field(name: str) -> partitions_fields_pb2.PartitionField:
    number = partitions_fields_pb2.PartitionRawEnumField.Value(f"PARTITION_RAW_ENUM_FIELD_{name}")
    raw = partitions_fields_pb2.PartitionRawField(field=number)
    return partitions_fields_pb2.PartitionField(partition_raw_field=raw)


def app_field(name: str) -> applications_fields_pb2.ApplicationField:
    enum = applications_fields_pb2.ApplicationRawEnumField
    raw = applications_fields_pb2.ApplicationRawField(
        field=enum.Value(f"APPLICATION_RAW_ENUM_FIELD_{name}")
    )
    return applications_fields_pb2.ApplicationField(application_field=raw)


_CONDITIONS: dict[str, tuple[str, Any]] = {
    "string": ("filter_string", filters_common_pb2.FilterStringOperator),
    "number": ("filter_number", filters_common_pb2.FilterNumberOperator),
    "boolean": ("filter_boolean", filters_common_pb2.FilterBooleanOperator),
    "date": ("filter_date", filters_common_pb2.FilterDateOperator),
    "duration": ("filter_duration", filters_common_pb2.FilterDurationOperator),
    "array": ("filter_array", filters_common_pb2.FilterArrayOperator),
    "status": ("filter_status", filters_common_pb2.FilterStatusOperator),
}


def cond(module: Any, field: Any, kind: str, op: str | int, value: Any) -> Any:
    """A FilterField of `module` (e.g. tasks_filters_pb2) on `field` with one condition."""
    member, enum = _CONDITIONS[kind]
    number = op if isinstance(op, int) else enum.Value(f"FILTER_{kind.upper()}_OPERATOR_{op}")
    filter_field = module.FilterField(field=field)
    condition = getattr(filter_field, member)
    condition.operator = number
    if kind in ("date", "duration"):
        condition.value.CopyFrom(value)
    else:
        condition.value = value
    return filter_field


def filters(module: Any, *branches: list[Any]) -> Any:
    """An OR of ANDs: each positional argument is one AND branch."""
    msg = module.Filters()
    for branch in branches:
        getattr(getattr(msg, "or").add(), "and").extend(branch)
    return msg


def tcond(field: Any, kind: str, op: str | int, value: Any) -> Any:
    return cond(tasks_filters_pb2, field, kind, op, value)


def select(entity: Entity, records: list[Any], msg: Any, id_attr: str) -> list[str]:
    keep = compile_filters(entity, msg)
    return [getattr(r, id_attr) for r in records if keep(r)]


def task_ids(records: list[SimTask], *conditions: Any) -> list[str]:
    return select(Entity.TASK, records, filters(tasks_filters_pb2, list(conditions)), "task_id")


# --------------------------------------------------------------------------------- each operator

TASKS = [
    task("a", session_id="alpha", options=options(priority=1)),
    task("b", session_id="beta", options=options(priority=5)),
    task("c", session_id="alphabet", options=options(priority=9)),
]


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("EQUAL", "alpha", ["a"]),
        ("NOT_EQUAL", "alpha", ["b", "c"]),
        ("CONTAINS", "lph", ["a", "c"]),
        ("NOT_CONTAINS", "lph", ["b"]),
        ("STARTS_WITH", "alpha", ["a", "c"]),
        ("ENDS_WITH", "ta", ["b"]),
    ],
)
def test_string_operators(op: str, value: str, expected: list[str]) -> None:
    assert task_ids(TASKS, tcond(task_field("SESSION_ID"), "string", op, value)) == expected


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ("EQUAL", ["b"]),
        ("NOT_EQUAL", ["a", "c"]),
        ("LESS_THAN", ["a"]),
        ("LESS_THAN_OR_EQUAL", ["a", "b"]),
        ("GREATER_THAN_OR_EQUAL", ["b", "c"]),
        ("GREATER_THAN", ["c"]),
    ],
)
def test_number_operators_on_task_option(op: str, expected: list[str]) -> None:
    assert task_ids(TASKS, tcond(task_option("PRIORITY"), "number", op, 5)) == expected


TIMED = [
    task("early", ended_at=T0 + 10),
    task("same", ended_at=T0 + 20),
    task("late", ended_at=T0 + 30),
    task("running"),  # ended_at unset: only NOT_EQUAL matches it
]


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ("EQUAL", ["same"]),
        ("NOT_EQUAL", ["early", "late", "running"]),
        ("BEFORE", ["early"]),
        ("BEFORE_OR_EQUAL", ["early", "same"]),
        ("AFTER_OR_EQUAL", ["same", "late"]),
        ("AFTER", ["late"]),
    ],
)
def test_date_operators_and_unset_dates(op: str, expected: list[str]) -> None:
    got = task_ids(TIMED, tcond(task_field("ENDED_AT"), "date", op, ts(T0 + 20)))
    assert got == expected


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ("EQUAL", ["same"]),
        ("NOT_EQUAL", ["early", "late", "running"]),
        ("SHORTER_THAN", ["early"]),
        ("SHORTER_THAN_OR_EQUAL", ["early", "same"]),
        ("LONGER_THAN_OR_EQUAL", ["same", "late"]),
        ("LONGER_THAN", ["late"]),
    ],
)
def test_duration_operators_and_unset_durations(op: str, expected: list[str]) -> None:
    field = task_field("CREATION_TO_END_DURATION")
    assert task_ids(TIMED, tcond(field, "duration", op, dur(20))) == expected


def test_max_duration_option_is_a_duration_and_unset_is_null() -> None:
    records = [task("set", options=options(max_duration=dur(5_000_000))), task("unset")]
    field = task_option("MAX_DURATION")
    assert task_ids(records, tcond(field, "duration", "EQUAL", dur(5_000_000))) == ["set"]
    assert task_ids(records, tcond(field, "duration", "NOT_EQUAL", dur(1))) == ["set", "unset"]


def test_status_operators_compare_wire_numbers() -> None:
    records = [task("done", status=TaskStatus.COMPLETED), task("queued")]
    field = task_field("STATUS")
    done = int(TaskStatus.COMPLETED)
    assert task_ids(records, tcond(field, "status", "EQUAL", done)) == ["done"]
    assert task_ids(records, tcond(field, "status", "NOT_EQUAL", done)) == ["queued"]


def test_array_operators_on_sessions_and_partitions() -> None:
    sessions = [session("s1", partition_ids=["cpu", "gpu"]), session("s2", partition_ids=["cpu"])]
    field = session_field("PARTITION_IDS")
    for op, expected in (("CONTAINS", ["s1"]), ("NOT_CONTAINS", ["s2"])):
        msg = filters(sessions_filters_pb2, [cond(sessions_filters_pb2, field, "array", op, "gpu")])
        assert select(Entity.SESSION, sessions, msg, "session_id") == expected
    parts = [partition("child", parent_partition_ids=["root"]), partition("root")]
    pfield = partition_field("PARENT_PARTITION_IDS")
    msg = filters(
        partitions_filters_pb2, [cond(partitions_filters_pb2, pfield, "array", "CONTAINS", "root")]
    )
    assert select(Entity.PARTITION, parts, msg, "partition_id") == ["child"]


def test_boolean_is_on_sessions() -> None:
    sessions = [session("open"), session("stopped", client_submission=False)]
    for value, expected in ((True, ["open"]), (False, ["stopped"])):
        field = session_field("CLIENT_SUBMISSION")
        msg = filters(
            sessions_filters_pb2, [cond(sessions_filters_pb2, field, "boolean", "IS", value)]
        )
        assert select(Entity.SESSION, sessions, msg, "session_id") == expected


def test_session_duration_and_options_fields() -> None:
    sessions = [
        session("closed", closed_at=T0 + 7, options=options(partition_id="gpu")),
        session("running", options=options(options={"team": "x"})),
    ]
    duration = cond(sessions_filters_pb2, session_field("DURATION"), "duration", "EQUAL", dur(7))
    msg = filters(sessions_filters_pb2, [duration])
    assert select(Entity.SESSION, sessions, msg, "session_id") == ["closed"]
    opt = sessions_fields_pb2.SessionField(
        task_option_field=sessions_fields_pb2.TaskOptionField(
            field=sessions_fields_pb2.TASK_OPTION_ENUM_FIELD_PARTITION_ID
        )
    )
    msg = filters(sessions_filters_pb2, [cond(sessions_filters_pb2, opt, "string", "EQUAL", "gpu")])
    assert select(Entity.SESSION, sessions, msg, "session_id") == ["closed"]
    generic = sessions_fields_pb2.SessionField(
        task_option_generic_field=sessions_fields_pb2.TaskOptionGenericField(field="team")
    )
    msg = filters(
        sessions_filters_pb2, [cond(sessions_filters_pb2, generic, "string", "EQUAL", "x")]
    )
    assert select(Entity.SESSION, sessions, msg, "session_id") == ["running"]


def test_result_fields_size_status_and_opaque_id_as_hex() -> None:
    results = [
        result("r1", size=10, opaque_id=b"\x01\xab", status=ResultStatus.COMPLETED),
        result("r2", size=99),
    ]

    def ids(*conditions: Any) -> list[str]:
        msg = filters(results_filters_pb2, list(conditions))
        return select(Entity.RESULT, results, msg, "result_id")

    rf = results_filters_pb2
    assert ids(cond(rf, result_field("SIZE"), "number", "GREATER_THAN", 10)) == ["r2"]
    assert ids(cond(rf, result_field("OPAQUE_ID"), "string", "EQUAL", "01ab")) == ["r1"]
    completed = int(ResultStatus.COMPLETED)
    assert ids(cond(rf, result_field("STATUS"), "status", "NOT_EQUAL", completed)) == ["r2"]


def test_application_filter() -> None:
    apps = [Application("a", "1", "ns", "svc"), Application("b", "2", "ns", "svc")]
    af = applications_filters_pb2
    msg = filters(af, [cond(af, app_field("VERSION"), "string", "EQUAL", "2")])
    keep = compile_filters(Entity.APPLICATION, msg)
    assert [a.name for a in apps if keep(a)] == ["b"]


def test_generic_option_filter_treats_missing_key_as_empty_string() -> None:
    records = [
        task("tagged", options=options(options={"team": "blue"})),
        task("other", options=options(options={"team": "red"})),
        task("untagged"),
    ]
    field = task_generic("team")
    assert task_ids(records, tcond(field, "string", "EQUAL", "blue")) == ["tagged"]
    assert task_ids(records, tcond(field, "string", "EQUAL", "")) == ["untagged"]
    assert task_ids(records, tcond(field, "string", "NOT_EQUAL", "blue")) == ["other", "untagged"]


# ----------------------------------------------------------------------------------- OR of ANDs


def test_or_of_ands() -> None:
    records = [
        task("a1", session_id="a", options=options(priority=1)),
        task("a9", session_id="a", options=options(priority=9)),
        task("b1", session_id="b", options=options(priority=1)),
        task("c9", session_id="c", options=options(priority=9)),
    ]
    in_a = tcond(task_field("SESSION_ID"), "string", "EQUAL", "a")
    high = tcond(task_option("PRIORITY"), "number", "GREATER_THAN", 5)
    in_b = tcond(task_field("SESSION_ID"), "string", "EQUAL", "b")
    msg = filters(tasks_filters_pb2, [in_a, high], [in_b])
    assert select(Entity.TASK, records, msg, "task_id") == ["a9", "b1"]


def test_empty_filters_match_everything() -> None:
    assert compile_filters(Entity.TASK, None) is match_all
    assert compile_filters(Entity.TASK, tasks_filters_pb2.Filters()) is match_all
    never = tcond(task_field("SESSION_ID"), "string", "EQUAL", "nope")
    assert compile_filters(Entity.TASK, filters(tasks_filters_pb2, [never], [])) is match_all


def test_empty_and_still_validates_other_branches() -> None:
    bad = tcond(task_field("STATUS"), "string", "EQUAL", "x")
    with pytest.raises(QueryError):
        compile_filters(Entity.TASK, filters(tasks_filters_pb2, [], [bad]))


# -------------------------------------------------------------------------------------- errors


def test_type_mismatch_names_field_and_both_conditions() -> None:
    bad = tcond(task_field("STATUS"), "string", "EQUAL", "x")
    expected = "filter on task field STATUS expects filter_status, got filter_string"
    with pytest.raises(QueryError, match=expected):
        compile_filters(Entity.TASK, filters(tasks_filters_pb2, [bad]))


@pytest.mark.parametrize(
    ("entity", "msg", "message"),
    [
        (Entity.TASK, tasks_filters_pb2.FilterField(), "task field is not set"),
        (
            Entity.TASK,
            tasks_filters_pb2.FilterField(field=task_field("UNSPECIFIED")),
            "unknown task field 0",
        ),
        (
            Entity.TASK,
            tasks_filters_pb2.FilterField(field=task_field("SESSION_ID")),
            "expects filter_string, got nothing",
        ),
        (
            Entity.TASK,
            tcond(task_field("SESSION_ID"), "string", 42, "x"),
            "unknown filter_string operator 42",
        ),
        (
            Entity.SESSION,
            cond(sessions_filters_pb2, session_field("OPTIONS"), "string", "EQUAL", "x"),
            "session field OPTIONS cannot be filtered",
        ),
        (
            # results.FilterField has no filter_boolean: this field cannot be filtered at all.
            Entity.RESULT,
            cond(results_filters_pb2, result_field("MANUAL_DELETION"), "string", "EQUAL", "x"),
            "expects filter_boolean, got filter_string",
        ),
    ],
)
def test_invalid_filters_raise(entity: Entity, msg: Any, message: str) -> None:
    module = {
        Entity.TASK: tasks_filters_pb2,
        Entity.SESSION: sessions_filters_pb2,
        Entity.RESULT: results_filters_pb2,
    }[entity]
    with pytest.raises(QueryError, match=message):
        compile_filters(entity, filters(module, [msg]))


def test_query_error_is_a_value_error() -> None:
    assert issubclass(QueryError, ValueError)


# -------------------------------------------------------------------------------- event filters


@pytest.mark.parametrize(
    ("field", "name"),
    [
        (task_field("STATUS"), "STATUS"),
        (task_field("CREATED_AT"), "CREATED_AT"),
        (task_field("FETCHED_AT"), "FETCHED_AT"),
        (task_field("POD_TTL"), "POD_TTL"),
        (task_field("PROCESSING_TO_END_DURATION"), "PROCESSING_TO_END_DURATION"),
        (task_option("MAX_DURATION"), "MAX_DURATION"),
    ],
)
def test_event_filters_reject_task_status_dates_and_durations(field: Any, name: str) -> None:
    # The offending condition sits in the second branch, after an accepted one.
    accepted = tcond(task_field("SESSION_ID"), "string", "EQUAL", "s")
    msg = filters(tasks_filters_pb2, [accepted], [tasks_filters_pb2.FilterField(field=field)])
    violation = event_filter_violation(Entity.TASK, msg)
    assert violation is not None
    assert f"task field {name}" in violation


def test_event_filters_accept_task_strings_and_numbers() -> None:
    msg = filters(
        tasks_filters_pb2,
        [tcond(task_field("OWNER_POD_ID"), "string", "EQUAL", "pod")],
        [tcond(task_option("PRIORITY"), "number", "EQUAL", 1)],
        [tcond(task_generic("k"), "string", "EQUAL", "v")],
    )
    assert event_filter_violation(Entity.TASK, msg) is None
    assert event_filter_violation(Entity.TASK, tasks_filters_pb2.Filters()) is None


@pytest.mark.parametrize(
    ("name", "rejected"),
    [("STATUS", True), ("CREATED_AT", True), ("COMPLETED_AT", True), ("NAME", False),
     ("SIZE", False), ("OWNER_TASK_ID", False)],
)  # fmt: skip
def test_event_filters_on_results(name: str, rejected: bool) -> None:
    msg = filters(results_filters_pb2, [results_filters_pb2.FilterField(field=result_field(name))])
    violation = event_filter_violation(Entity.RESULT, msg)
    assert (violation is not None) == rejected
    if rejected:
        assert name in (violation or "")


# ----------------------------------------------------------------------------------------- sort


def test_sort_dates_none_first_ascending_and_last_descending_ties_stable() -> None:
    records = [
        task("x", ended_at=T0 + 5),
        task("none1"),
        task("y", ended_at=T0 + 1),
        task("tie1", ended_at=T0 + 3),
        task("none2"),
        task("tie2", ended_at=T0 + 3),
    ]
    field = task_field("ENDED_AT")
    ascending = [t.task_id for t in sort_records(records, Entity.TASK, field, ASC)]
    assert ascending == ["none1", "none2", "y", "tie1", "tie2", "x"]
    descending = [t.task_id for t in sort_records(records, Entity.TASK, field, DESC)]
    assert descending == ["x", "tie1", "tie2", "y", "none1", "none2"]


def test_unspecified_direction_sorts_ascending() -> None:
    records = [task("b"), task("a"), task("c")]
    got = sort_records(records, Entity.TASK, task_field("TASK_ID"), 0)
    assert [t.task_id for t in got] == ["a", "b", "c"]


def test_sort_on_status_option_and_array() -> None:
    records = [task("done", status=TaskStatus.COMPLETED), task("new", status=TaskStatus.CREATING)]
    got = sort_records(records, Entity.TASK, task_field("STATUS"), ASC)
    assert [t.task_id for t in got] == ["new", "done"]
    parts = [
        partition("p1", parent_partition_ids=["b"]),
        partition("p2", parent_partition_ids=["a", "z"]),
    ]
    got_parts = sort_records(parts, Entity.PARTITION, partition_field("PARENT_PARTITION_IDS"), ASC)
    assert [p.partition_id for p in got_parts] == ["p2", "p1"]


def test_sort_on_several_application_fields() -> None:
    apps = [
        Application("b", "1", "", ""),
        Application("a", "2", "", ""),
        Application("a", "1", "", ""),
    ]
    key_fields = [app_field("NAME"), app_field("VERSION")]
    got = sort_records(apps, Entity.APPLICATION, key_fields, ASC)
    assert got == [apps[2], apps[1], apps[0]]


@pytest.mark.parametrize(
    ("entity", "field", "message"),
    [
        (Entity.TASK, tasks_fields_pb2.TaskField(), "sort field is required"),
        (Entity.TASK, None, "sort field is required"),
        (Entity.APPLICATION, [], "sort field is required"),
        (Entity.SESSION, session_field("OPTIONS"), "session field OPTIONS cannot be sorted"),
        (Entity.TASK, task_option("UNSPECIFIED"), "unknown task field 0"),
        (Entity.RESULT, task_field("STATUS"), "result fields have no task_summary_field"),
    ],
)
def test_invalid_sort_raises(entity: Entity, field: Any, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        sort_key(entity, field)


def test_unknown_direction_raises() -> None:
    with pytest.raises(QueryError, match="unknown sort direction 7"):
        sort_records([], Entity.TASK, task_field("TASK_ID"), 7)


# --------------------------------------------------------------------------------------- paging


def test_paginate_slices_and_counts() -> None:
    items = list(range(25))
    assert paginate(items, 0, 10) == (list(range(10)), 25)
    assert paginate(items, 2, 10) == ([20, 21, 22, 23, 24], 25)
    assert paginate(items, 3, 10) == ([], 25)
    assert paginate(items, 5, 0) == ([], 25)  # page_size 0 counts


@pytest.mark.parametrize(
    ("page", "page_size", "message"),
    [(-1, 10, "page must not be negative"), (0, -1, "page_size must be positive")],
)
def test_paginate_rejects_negative_numbers(page: int, page_size: int, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        paginate([1], page, page_size)
    with pytest.raises(QueryError, match=message):
        run_list_query([], Entity.TASK, None, task_field("TASK_ID"), ASC, page, page_size)


def test_run_list_query_filters_sorts_and_pages() -> None:
    records = [task(f"t{i}", options=options(priority=i % 3)) for i in range(10)]
    keep = filters(tasks_filters_pb2, [tcond(task_option("PRIORITY"), "number", "NOT_EQUAL", 0)])
    page, total = run_list_query(records, Entity.TASK, keep, task_option("PRIORITY"), DESC, 1, 4)
    assert total == 6
    # priority 2: t2 t5 t8, then priority 1: t1 t4 t7 (stable within a tie); page 1 of size 4.
    assert [t.task_id for t in page] == ["t4", "t7"]
    count, total = run_list_query(records, Entity.TASK, keep, task_option("PRIORITY"), ASC, 0, 0)
    assert (count, total) == ([], 6)


def test_run_list_query_validates_sort_even_when_counting() -> None:
    with pytest.raises(QueryError, match="sort field is required"):
        run_list_query([task("a")], Entity.TASK, None, tasks_fields_pb2.TaskField(), ASC, 0, 0)


# --------------------------------------------------------------------------------- applications


def test_applications_of_groups_distinct_option_tuples_in_first_seen_order() -> None:
    def app_task(task_id: str, name: str, version: str) -> SimTask:
        opts = options(application_name=name, application_version=version,
                       application_namespace="ns", application_service="svc")  # fmt: skip
        return task(task_id, options=opts)

    tasks = [app_task("1", "b", "1"), app_task("2", "a", "1"), app_task("3", "b", "1"),
             app_task("4", "b", "2")]  # fmt: skip
    assert applications_of(tasks) == [
        Application("b", "1", "ns", "svc"),
        Application("a", "1", "ns", "svc"),
        Application("b", "2", "ns", "svc"),
    ]
    assert applications_of([]) == []


# --------------------------------------------------------------------------- property: reference

_STRING_OPS = {
    "EQUAL": lambda x, v: x == v,
    "NOT_EQUAL": lambda x, v: x != v,
    "CONTAINS": lambda x, v: v in x,
    "NOT_CONTAINS": lambda x, v: v not in x,
    "STARTS_WITH": lambda x, v: x[: len(v)] == v,
    "ENDS_WITH": lambda x, v: len(v) == 0 or x[-len(v) :] == v,
}
_NUMBER_OPS = {
    "EQUAL": lambda x, v: x == v,
    "NOT_EQUAL": lambda x, v: x != v,
    "LESS_THAN": lambda x, v: x < v,
    "LESS_THAN_OR_EQUAL": lambda x, v: not x > v,
    "GREATER_THAN_OR_EQUAL": lambda x, v: not x < v,
    "GREATER_THAN": lambda x, v: x > v,
}

_text = st.text(alphabet="ab", max_size=3)
_small = st.integers(-3, 3)
_records = st.lists(st.tuples(_text, _small), max_size=12)
_string_cond = st.tuples(st.just("string"), st.sampled_from(sorted(_STRING_OPS)), _text)
_number_cond = st.tuples(st.just("number"), st.sampled_from(sorted(_NUMBER_OPS)), _small)
_conditions = st.lists(st.lists(st.one_of(_string_cond, _number_cond), max_size=3), max_size=3)


def _reference_match(record: tuple[str, int], branches: list[list[tuple[str, str, Any]]]) -> bool:
    """The obvious reading of the API: some branch whose every condition holds (or no branch)."""
    if not branches:
        return True
    owner, priority = record
    for branch in branches:
        ok = True
        for kind, op, value in branch:
            ops, field_value = (_STRING_OPS, owner) if kind == "string" else (_NUMBER_OPS, priority)
            ok = ok and ops[op](field_value, value)
        if ok:
            return True
    return False


@given(records=_records, branches=_conditions)
def test_compile_filters_agrees_with_a_naive_reference(
    records: list[tuple[str, int]], branches: list[list[tuple[str, str, Any]]]
) -> None:
    tasks = [
        task(str(i), owner_pod_id=owner, options=options(priority=priority))
        for i, (owner, priority) in enumerate(records)
    ]
    fields = {"string": task_field("OWNER_POD_ID"), "number": task_option("PRIORITY")}
    msg = filters(
        tasks_filters_pb2,
        *[[tcond(fields[kind], kind, op, value) for kind, op, value in b] for b in branches],
    )
    keep = compile_filters(Entity.TASK, msg)
    assert [keep(t) for t in tasks] == [_reference_match(r, branches) for r in records]


@given(
    ends=st.lists(st.one_of(st.none(), st.integers(0, 3)), max_size=12),
    direction=st.sampled_from([ASC, DESC]),
)
def test_sort_records_agrees_with_sorted_on_the_public_key(
    ends: list[int | None], direction: int
) -> None:
    records = [task(str(i), ended_at=None if e is None else T0 + e) for i, e in enumerate(ends)]
    field = task_field("ENDED_AT")
    expected = sorted(records, key=sort_key(Entity.TASK, field), reverse=direction == DESC)
    assert sort_records(records, Entity.TASK, field, direction) == expected
