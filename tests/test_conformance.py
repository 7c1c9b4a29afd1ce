"""Conformance: the simulator answers the official synchronous ArmoniK clients as a server would.

Each simulator runs on its own event loop in a daemon thread (`SimulatorThread`); the tests drive
it over a real gRPC channel with the `armonik` client classes, and with raw stubs for the calls the
classes do not wrap or for malformed requests. A client interceptor records every RPC that reaches
the server; the last test checks that every RPC of the API (Submitter excepted) was exercised, so
it must run after the others (pytest runs a file's tests in order).

Nothing sleeps: tests wait on event streams, with a watchdog that closes the channel when a wait
takes too long, so a broken simulator fails a test instead of hanging it.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from armonik.client import (
    ArmoniKEvents,
    ArmoniKHealthChecks,
    ArmoniKPartitions,
    ArmoniKResults,
    ArmoniKSessions,
    ArmoniKTasks,
    ArmoniKVersions,
)
from armonik.common import (
    Direction,
    EventTypes,
    Partition,
    Result,
    ResultStatus,
    Session,
    SessionStatus,
    Task,
    TaskDefinition,
    TaskOptions,
    TaskStatus,
)
from armonik.protogen.client import (
    applications_service_pb2,
    applications_service_pb2_grpc,
    auth_service_pb2,
    auth_service_pb2_grpc,
    events_service_pb2,
    events_service_pb2_grpc,
    health_checks_service_pb2,
    partitions_service_pb2,
    partitions_service_pb2_grpc,
    results_service_pb2,
    results_service_pb2_grpc,
    sessions_service_pb2,
    sessions_service_pb2_grpc,
    submitter_service_pb2_grpc,
    tasks_service_pb2,
    tasks_service_pb2_grpc,
    versions_service_pb2,
)
from armonik.protogen.common import (
    applications_common_pb2,
    applications_fields_pb2,
    auth_common_pb2,
    events_common_pb2,
    objects_pb2,
    partitions_common_pb2,
    results_common_pb2,
    sessions_common_pb2,
    sort_direction_pb2,
    tasks_common_pb2,
)

from armonik_observe.simulator.builtin import builtin_scenario
from armonik_observe.simulator.embedded import SimulatorThread
from armonik_observe.simulator.profile import TaskProfile, constant
from armonik_observe.simulator.records import SimTask
from armonik_observe.simulator.scenario import PartitionSpec, Scenario
from armonik_observe.simulator.server import Simulator

START_US = 1_800_000_000_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SPEED = 200.0
WAIT_S = 20.0
SLOW_PODS = 2

OPTIONS = TaskOptions(
    max_duration=timedelta(minutes=5), priority=2, max_retries=1, partition_id="default"
)
# Slow simulator: tasks process for 10 simulated hours, so they stay PROCESSING during a test.
SLOW_OPTIONS = TaskOptions(
    max_duration=timedelta(days=1), priority=1, max_retries=0, partition_id="default"
)
SLOW_SCENARIO = Scenario(
    name="slow", partitions=(PartitionSpec(id="default", pods=SLOW_PODS),), sessions=()
)

TIME_FIELDS = (
    "created_at", "submitted_at", "received_at", "acquired_at",
    "fetched_at", "started_at", "processed_at", "ended_at",
)  # fmt: skip
DURATIONS = {
    "creation_to_end_duration": ("created_at", "ended_at"),
    "processing_to_end_duration": ("started_at", "ended_at"),
    "received_to_end_duration": ("received_at", "ended_at"),
}

# ------------------------------------------------------------------------------ RPC recording

CALLED: set[str] = set()


class _Recorder(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Records the full name of every RPC a test sends (e.g. /...sessions.Sessions/GetSession)."""

    def _record(self, details: Any) -> None:
        method = details.method
        CALLED.add(method.decode() if isinstance(method, bytes) else method)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self._record(details)
        return continuation(details, request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        self._record(details)
        return continuation(details, request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        self._record(details)
        return continuation(details, requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        self._record(details)
        return continuation(details, requests)


RECORDER = _Recorder()

# ------------------------------------------------------------------------------------ fixtures


@dataclass
class Plane:
    """A simulator served from its own thread, and the clients of one recorded channel."""

    thread: SimulatorThread
    sim: Simulator
    channel: grpc.Channel
    sessions: ArmoniKSessions = field(init=False)
    tasks: ArmoniKTasks = field(init=False)
    results: ArmoniKResults = field(init=False)

    def __post_init__(self) -> None:
        self.sessions = ArmoniKSessions(self.channel)
        self.tasks = ArmoniKTasks(self.channel)
        self.results = ArmoniKResults(self.channel)

    def truth(self, function: Callable[[Simulator], Any]) -> Any:
        """Read the simulator's ground truth on its own loop."""
        return self.thread.run(function)


@contextlib.contextmanager
def _serve(factory: Callable[[], Simulator]) -> Iterator[Plane]:
    thread = SimulatorThread(factory)
    with thread as sim:
        raw = grpc.insecure_channel(sim.target)
        try:
            yield Plane(thread, sim, grpc.intercept_channel(raw, RECORDER))
        finally:
            raw.close()


@pytest.fixture(scope="module")
def fast() -> Iterator[Plane]:
    """An empty simulator (one partition "default") whose tasks take a few milliseconds."""
    with _serve(lambda: Simulator(speed=SPEED, start_us=START_US)) as plane:
        yield plane


@pytest.fixture(scope="module")
def slow() -> Iterator[Plane]:
    """A simulator whose tasks never finish during the tests, to watch queued tasks."""
    with _serve(_slow_simulator) as plane:
        yield plane


def _slow_simulator() -> Simulator:
    profile = TaskProfile(processing=constant(36_000.0))
    return Simulator(SLOW_SCENARIO, speed=SPEED, start_us=START_US, default_profile=profile)


# ------------------------------------------------------------------------------------- helpers


def follow(
    plane: Plane,
    session_id: str,
    handler: Callable[[str, EventTypes, Any], bool],
    kinds: Iterable[int] = (),
    task_filter: Any = None,
    result_filter: Any = None,
) -> None:
    """Run ArmoniKEvents.get_events until the handler returns True; fail after WAIT_S seconds."""
    raw = grpc.insecure_channel(plane.sim.target)
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        raw.close()

    watchdog = threading.Timer(WAIT_S, expire)
    watchdog.start()
    try:
        events = ArmoniKEvents(grpc.intercept_channel(raw, RECORDER))
        events.get_events(session_id, list(kinds), [handler], task_filter, result_filter)
    except grpc.RpcError:
        if expired.is_set():
            pytest.fail(f"the awaited events did not arrive within {WAIT_S} s")
        raise
    finally:
        watchdog.cancel()
        raw.close()


def wait_results(plane: Plane, session_id: str, result_ids: list[str]) -> None:
    """ArmoniKEvents.wait_for_result_availability, bounded by a watchdog."""
    raw = grpc.insecure_channel(plane.sim.target)
    watchdog = threading.Timer(WAIT_S, raw.close)
    watchdog.start()
    try:
        events = ArmoniKEvents(grpc.intercept_channel(raw, RECORDER))
        events.wait_for_result_availability(result_ids, session_id)
    except ValueError:  # the watchdog closed the channel: the client cannot call again
        pytest.fail(f"results {result_ids} were not available within {WAIT_S} s")
    finally:
        watchdog.cancel()
        raw.close()


@dataclass
class EventLog:
    """What a get_events handler saw, and the latest status of each task."""

    events: list[tuple[EventTypes, Any]] = field(default_factory=list)
    task_status: dict[str, TaskStatus] = field(default_factory=dict)
    result_status: dict[str, ResultStatus] = field(default_factory=dict)

    def handler(self, done: Callable[[EventLog], bool]) -> Callable[[str, EventTypes, Any], bool]:
        """A handler recording every event, ending the stream once `done(self)` holds."""

        def handle(session_id: str, kind: EventTypes, event: Any) -> bool:
            self.events.append((kind, event))
            if kind in (EventTypes.NEW_TASK, EventTypes.TASK_STATUS_UPDATE):
                self.task_status[event.task_id] = TaskStatus(event.status)
            elif kind in (EventTypes.NEW_RESULT, EventTypes.RESULT_STATUS_UPDATE):
                self.result_status[event.result_id] = ResultStatus(event.status)
            return done(self)

        return handle

    def kinds(self) -> set[EventTypes]:
        """The kinds of event received."""
        return {kind for kind, _ in self.events}

    def count(self, status: TaskStatus) -> int:
        """How many tasks were last seen in `status`."""
        return sum(1 for s in self.task_status.values() if s == status)


def code_of(call: Callable[[], Any]) -> grpc.StatusCode:
    """Run a call expected to fail and return its gRPC status code."""
    with pytest.raises(grpc.RpcError) as caught:
        result = call()
        if isinstance(result, Iterator):
            list(result)  # a server stream fails when read
    return caught.value.code()


def micros(value: datetime | None) -> int | None:
    """A client datetime as epoch microseconds (exact)."""
    return None if value is None else (value - EPOCH) // timedelta(microseconds=1)


def new_session(plane: Plane, options: TaskOptions = OPTIONS) -> str:
    """Create a session on partition "default"."""
    return plane.sessions.create_session(options, partition_ids=["default"])


def simple_tasks(plane: Plane, session_id: str, count: int, prefix: str) -> list[TaskDefinition]:
    """Create `count` payloads (with data) and outputs; return one task definition per pair."""
    data = {f"{prefix}-payload-{i}": f"{prefix}-{i}".encode() for i in range(count)}
    payloads = plane.results.create_results(data, session_id, batch_size=count)
    outputs = plane.results.create_results_metadata(
        [f"{prefix}-out-{i}" for i in range(count)], session_id
    )
    return [
        TaskDefinition(
            payload_id=payloads[f"{prefix}-payload-{i}"].result_id,
            expected_output_ids=[outputs[f"{prefix}-out-{i}"].result_id],
        )
        for i in range(count)
    ]


def session_counts(plane: Plane, session_id: str) -> dict[TaskStatus, int]:
    """CountTasksByStatus for one session."""
    return plane.tasks.count_tasks_by_status(Task.session_id == session_id)


def session_results(plane: Plane, session_id: str) -> dict[str, Result]:
    """Every result of a session by name (ListResults)."""
    total, results = plane.results.list_results(Result.session_id == session_id, page_size=100)
    assert total == len(results)
    return {r.name: r for r in results}


# -------------------------------------------------------------------------- the DAG workflow


@dataclass
class Dag:
    """t1 -> t2 through t1's output, and `blocked`, waiting for a result nobody produces."""

    session_id: str
    results: dict[str, Result]
    t1: str
    t2: str
    blocked: str
    log: EventLog


def _dag_definitions(results: dict[str, Result]) -> list[TaskDefinition]:
    rid = {name: r.result_id for name, r in results.items()}
    return [
        TaskDefinition(payload_id=rid["t1-payload"], expected_output_ids=[rid["t1-out"]]),
        TaskDefinition(payload_id=rid["t2-payload"], expected_output_ids=[rid["t2-out"]],
                       data_dependencies=[rid["t1-out"]]),
        TaskDefinition(payload_id=rid["blocked-payload"], expected_output_ids=[rid["blocked-out"]],
                       data_dependencies=[rid["never"]]),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def dag(fast: Plane) -> Dag:
    """Submit the DAG and follow its events until t1 and t2 complete and `blocked` is PENDING."""
    session_id = new_session(fast)
    results = fast.results.create_results_metadata(
        ["t1-out", "t2-out", "never", "blocked-out"], session_id
    )
    results |= fast.results.create_results(
        {"t1-payload": b"payload-1", "t2-payload": b"payload-2", "blocked-payload": b"payload-3"},
        session_id,
    )
    t1, t2, blocked = (t.id for t in fast.tasks.submit_tasks(session_id, _dag_definitions(results)))
    log = EventLog()

    def done(log: EventLog) -> bool:
        status = log.task_status
        return (status.get(t1) == status.get(t2) == TaskStatus.COMPLETED
                and status.get(blocked) == TaskStatus.PENDING)  # fmt: skip

    follow(fast, session_id, log.handler(done))
    return Dag(session_id, results, t1, t2, blocked, log)


# ------------------------------------------------------------------------ 1. platform services


def test_versions_health_and_current_user(fast: Plane) -> None:
    versions = ArmoniKVersions(fast.channel).list_versions()
    assert set(versions) == {"core", "api"}
    assert all(versions.values())

    health = ArmoniKHealthChecks(fast.channel).check_health()
    assert set(health) == {"database", "object", "queue"}
    assert all(service["status"] == 1 for service in health.values())  # HEALTHY

    auth = auth_service_pb2_grpc.AuthenticationStub(fast.channel)
    user = auth.GetCurrentUser(auth_common_pb2.GetCurrentUserRequest()).user
    assert user.username == "Anonymous"


def test_partitions_list_and_get(fast: Plane) -> None:
    partitions = ArmoniKPartitions(fast.channel)
    total, listed = partitions.list_partitions()
    assert total == 1
    assert [p.id for p in listed] == ["default"]

    assert partitions.get_partition("default").id == "default"
    assert code_of(lambda: partitions.get_partition("no-such-partition")) == (
        grpc.StatusCode.NOT_FOUND
    )
    total, listed = partitions.list_partitions(Partition.id == "no-such-partition")
    assert (total, listed) == (0, [])


# ----------------------------------------------------------------------------------- 2. sessions


def test_session_create_get_and_list(fast: Plane) -> None:
    session_id = new_session(fast)
    session = fast.sessions.get_session(session_id)
    assert session.session_id == session_id
    assert session.status == SessionStatus.RUNNING
    assert session.partition_ids == ["default"]
    assert micros(session.created_at) >= START_US
    assert session.options.max_duration == OPTIONS.max_duration
    assert (session.options.priority, session.options.max_retries) == (2, 1)
    assert session.options.partition_id == "default"

    other = new_session(fast)
    total, listed = fast.sessions.list_sessions(Session.session_id == session_id)
    assert total == 1
    assert [s.session_id for s in listed] == [session_id]

    running = Session.status == SessionStatus.RUNNING
    total, ascending = fast.sessions.list_sessions(running, sort_field=Session.created_at)
    assert total == len(ascending) >= 2
    assert {session_id, other} <= {s.session_id for s in ascending}
    created = [s.created_at for s in ascending]
    assert created == sorted(created)
    _, descending = fast.sessions.list_sessions(
        running, sort_field=Session.created_at, sort_direction=Direction.DESC
    )
    assert [s.created_at for s in descending] == sorted(created, reverse=True)


# ------------------------------------------------------------------------------------ 3. results


def test_results_metadata_data_and_owner(fast: Plane) -> None:
    results = fast.results
    session_id = new_session(fast)
    created = results.create_results_metadata(["uploaded", "imported", "kept"], session_id)
    assert {r.status for r in created.values()} == {ResultStatus.CREATED}
    ids = {name: r.result_id for name, r in created.items()}
    owners = results.get_owner_task_id(list(ids.values()), session_id)
    assert owners == dict.fromkeys(ids.values(), "")

    chunk = results.get_service_config()
    assert chunk > 0
    data = bytes(range(256)) * (2 * chunk // 256 + 3)  # more than two chunks
    results.upload_result_data(ids["uploaded"], session_id, data)
    uploaded = results.get_result(ids["uploaded"])
    assert (uploaded.status, uploaded.size) == (ResultStatus.COMPLETED, len(data))
    assert results.download_result_data(ids["uploaded"], session_id) == data

    imported = results.import_data(session_id, [(ids["imported"], b"opaque-1")])
    assert imported[ids["imported"]].status == ResultStatus.COMPLETED
    assert imported[ids["imported"]].opaque_id == b"opaque-1"

    with_data = results.create_results({"inline": b"hello"}, session_id)["inline"]
    assert (with_data.status, with_data.size) == (ResultStatus.COMPLETED, 5)
    assert results.download_result_data(with_data.result_id, session_id) == b"hello"

    results.delete_result_data([with_data.result_id], session_id)
    assert results.get_result(with_data.result_id).status == ResultStatus.DELETED
    assert results.get_result(ids["kept"]).status == ResultStatus.CREATED

    listed = session_results(fast, session_id)
    assert set(listed) == {"uploaded", "imported", "kept", "inline"}
    total, completed = results.list_results(
        (Result.session_id == session_id) & (Result.status == ResultStatus.COMPLETED)
    )
    assert total == 2
    assert {r.name for r in completed} == {"uploaded", "imported"}


def test_upload_into_completed_result_is_refused(fast: Plane) -> None:
    session_id = new_session(fast)
    done = fast.results.create_results({"done": b"x"}, session_id)["done"]
    code = code_of(lambda: fast.results.upload_result_data(done.result_id, session_id, b"y"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert fast.results.download_result_data(done.result_id, session_id) == b"x"


# -------------------------------------------------------------------------------------- 4. tasks


def test_dag_completes_in_dependency_order(fast: Plane, dag: Dag) -> None:
    t1, t2 = fast.tasks.get_task(dag.t1), fast.tasks.get_task(dag.t2)
    assert t2.data_dependencies == [dag.results["t1-out"].result_id]
    assert t2.submitted_at >= t1.ended_at  # t2 waited for its input
    assert dag.log.task_status[dag.blocked] == TaskStatus.PENDING

    rid = {name: r.result_id for name, r in dag.results.items()}
    # The simulated worker writes each expected output as the task's payload bytes.
    assert fast.results.download_result_data(rid["t1-out"], dag.session_id) == b"payload-1"
    assert fast.results.download_result_data(rid["t2-out"], dag.session_id) == b"payload-2"
    owners = fast.results.get_owner_task_id(
        [rid["t1-out"], rid["t2-out"], rid["blocked-out"]], dag.session_id
    )
    assert owners == {rid["t1-out"]: dag.t1, rid["t2-out"]: dag.t2, rid["blocked-out"]: dag.blocked}
    t1_out = fast.results.get_result(rid["t1-out"])
    assert (t1_out.status, t1_out.owner_task_id, t1_out.size) == (ResultStatus.COMPLETED, dag.t1, 9)
    assert fast.results.get_result(rid["blocked-out"]).status == ResultStatus.CREATED


def test_list_tasks_filter_sort_paging_total(fast: Plane, dag: Dag) -> None:
    in_session = Task.session_id == dag.session_id
    ids = sorted([dag.t1, dag.t2, dag.blocked])
    total, page0 = fast.tasks.list_tasks(in_session, page=0, page_size=2, detailed=False)
    _, page1 = fast.tasks.list_tasks(in_session, page=1, page_size=2, detailed=False)
    _, page2 = fast.tasks.list_tasks(in_session, page=2, page_size=2, detailed=False)
    assert total == 3
    assert [len(page0), len(page1), len(page2)] == [2, 1, 0]
    assert [t.id for t in page0 + page1] == ids  # default sort: task id ascending

    _, descending = fast.tasks.list_tasks(in_session, sort_direction=Direction.DESC)
    assert [t.id for t in descending] == ids[::-1]

    done_or_pending = (in_session & (Task.status == TaskStatus.COMPLETED)) | (
        in_session & (Task.status == TaskStatus.PENDING)
    )
    total, listed = fast.tasks.list_tasks(done_or_pending)
    assert total == len(listed) == 3
    total, completed = fast.tasks.list_tasks(in_session & (Task.status == TaskStatus.COMPLETED))
    assert total == 2
    assert {t.id for t in completed} == {dag.t1, dag.t2}
    assert all(t.options.priority == 2 for t in completed)


def test_list_tasks_summaries_agree_with_details(fast: Plane, dag: Dag) -> None:
    in_session = Task.session_id == dag.session_id
    _, summaries = fast.tasks.list_tasks(in_session, detailed=False, with_errors=True)
    _, details = fast.tasks.list_tasks(in_session, detailed=True)
    by_id = {t.id: t for t in details}
    assert set(by_id) == {t.id for t in summaries}
    for summary in summaries:
        detail = by_id[summary.id]
        assert summary.status == detail.status
        assert summary.count_data_dependencies == len(detail.data_dependencies)
        assert summary.count_expected_output_ids == len(detail.expected_output_ids) == 1
        assert summary.count_parent_task_ids == summary.count_retry_of_ids == 0
        times = [getattr(detail, name) for name in TIME_FIELDS]
        assert [getattr(summary, name) for name in TIME_FIELDS] == times


def test_get_task_timestamps_are_ordered_and_durations_exact(fast: Plane, dag: Dag) -> None:
    task = fast.tasks.get_task(dag.t2)
    assert task.status == TaskStatus.COMPLETED
    assert task.session_id == dag.session_id
    assert task.payload_id == dag.results["t2-payload"].result_id
    assert task.expected_output_ids == [dag.results["t2-out"].result_id]
    assert task.initial_task_id == task.id
    assert task.output.success
    assert task.pod_hostname and task.owner_pod_id
    times = [getattr(task, name) for name in TIME_FIELDS]
    assert None not in times
    assert times == sorted(times)
    assert micros(task.created_at) >= START_US
    for duration, (start, end) in DURATIONS.items():
        assert getattr(task, duration) == getattr(task, end) - getattr(task, start)


def test_result_ids_and_sparse_counts(fast: Plane, dag: Dag) -> None:
    rid = {name: r.result_id for name, r in dag.results.items()}
    assert fast.tasks.get_result_ids([dag.t1, dag.t2, dag.blocked]) == {
        dag.t1: [rid["t1-out"]], dag.t2: [rid["t2-out"]], dag.blocked: [rid["blocked-out"]],
    }  # fmt: skip
    # Sparse: only the statuses that have tasks.
    assert session_counts(fast, dag.session_id) == {TaskStatus.COMPLETED: 2, TaskStatus.PENDING: 1}


def _status_is(task_id: str, status: TaskStatus) -> Callable[[EventLog], bool]:
    return lambda log: log.task_status.get(task_id) == status


def _watch(plane: Plane, requests: list[Any]) -> Any:
    stub = results_service_pb2_grpc.ResultsStub(plane.channel)
    return stub.WatchResults(iter(requests), timeout=WAIT_S)


def test_cancel_pending_task_aborts_its_output_as_watched(fast: Plane) -> None:
    session_id = new_session(fast)
    [definition] = simple_tasks(fast, session_id, 1, "cancel")
    never = fast.results.create_results_metadata(["never"], session_id)["never"].result_id
    definition.data_dependencies = [never]
    [task] = fast.tasks.submit_tasks(session_id, [definition])
    follow(fast, session_id, EventLog().handler(_status_is(task.id, TaskStatus.PENDING)))
    output = definition.expected_output_ids[0]

    created, aborted = ResultStatus.CREATED, ResultStatus.ABORTED
    request = results_common_pb2.WatchResultRequest(
        fetch_statuses=[created], watch_statuses=[aborted], result_ids=[output]
    )
    watch = _watch(fast, [request])
    try:
        fetched = next(watch)
        assert (fetched.status, list(fetched.result_ids)) == (created, [output])
        fast.tasks.cancel_tasks([task.id])
        update = next(watch)
        assert (update.status, list(update.result_ids)) == (aborted, [output])
    finally:
        watch.cancel()

    cancelled = fast.tasks.get_task(task.id)
    assert cancelled.status == TaskStatus.CANCELLED
    assert cancelled.started_at is None and cancelled.ended_at is not None
    assert cancelled.creation_to_end_duration == cancelled.ended_at - cancelled.created_at
    assert session_counts(fast, session_id) == {TaskStatus.CANCELLED: 1}
    assert fast.results.get_result(never).status == ResultStatus.CREATED


def test_watch_results_answers_notfound_for_unknown_ids(fast: Plane) -> None:
    session_id = new_session(fast)
    known = fast.results.create_results({"known": b"k"}, session_id)["known"].result_id
    statuses = [ResultStatus.COMPLETED, ResultStatus.NOTFOUND]
    first = results_common_pb2.WatchResultRequest(
        fetch_statuses=statuses, watch_statuses=statuses, result_ids=["no-such-result"]
    )
    second = results_common_pb2.WatchResultRequest(
        fetch_statuses=statuses, watch_statuses=statuses, result_ids=[known]
    )
    watch = _watch(fast, [first, second])
    try:
        reply = next(watch)  # the first request's answer comes first
    finally:
        watch.cancel()
    assert (reply.status, list(reply.result_ids)) == (ResultStatus.NOTFOUND, ["no-such-result"])


def test_pause_holds_a_ready_task_until_resume(fast: Plane) -> None:
    session_id = new_session(fast)
    [definition] = simple_tasks(fast, session_id, 1, "paused")
    input_id = fast.results.create_results_metadata(["input"], session_id)["input"].result_id
    definition.data_dependencies = [input_id]
    [task] = fast.tasks.submit_tasks(session_id, [definition])
    follow(fast, session_id, EventLog().handler(_status_is(task.id, TaskStatus.PENDING)))

    assert fast.sessions.pause_session(session_id).status == SessionStatus.PAUSED
    fast.results.upload_result_data(input_id, session_id, b"input")
    assert fast.tasks.get_task(task.id).status == TaskStatus.PAUSED  # ready, but held

    assert fast.sessions.resume_session(session_id).status == SessionStatus.RUNNING
    output = definition.expected_output_ids[0]
    wait_results(fast, session_id, [output])
    assert fast.results.download_result_data(output, session_id) == b"paused-0"
    assert fast.tasks.get_task(task.id).status == TaskStatus.COMPLETED
    history = fast.truth(lambda sim: list(sim.plane.tasks[task.id].history))
    assert history[:4] == [
        TaskStatus.CREATING, TaskStatus.PENDING, TaskStatus.PAUSED, TaskStatus.SUBMITTED
    ]


def _list_applications(plane: Plane, page_size: int = 100) -> Any:
    raw, request_type = applications_fields_pb2, applications_common_pb2.ListApplicationsRequest
    fields = [
        raw.ApplicationField(application_field=raw.ApplicationRawField(field=number))
        for number in (raw.APPLICATION_RAW_ENUM_FIELD_NAME, raw.APPLICATION_RAW_ENUM_FIELD_VERSION)
    ]
    sort = request_type.Sort(fields=fields, direction=sort_direction_pb2.SORT_DIRECTION_ASC)
    request = request_type(page=0, page_size=page_size, sort=sort)
    stub = applications_service_pb2_grpc.ApplicationsStub(plane.channel)
    return stub.ListApplications(request)


def test_applications_group_task_options(fast: Plane) -> None:
    app = TaskOptions(
        max_duration=timedelta(minutes=5), priority=1, max_retries=0, partition_id="default",
        application_name="conf-app", application_version="1.0",
        application_namespace="conf.ns", application_service="svc",
    )  # fmt: skip
    session_id = new_session(fast, app)
    definitions = simple_tasks(fast, session_id, 3, "app")
    definitions[2].options = TaskOptions(
        max_duration=timedelta(minutes=5), priority=1, max_retries=0, application_version="2.0"
    )
    fast.tasks.submit_tasks(session_id, definitions)
    wait_results(fast, session_id, [d.expected_output_ids[0] for d in definitions])

    reply = _list_applications(fast)
    found = [(a.name, a.version, a.namespace, a.service) for a in reply.applications]
    assert reply.total == len(found) == len(set(found))  # one entry per distinct application
    assert found == sorted(found, key=lambda a: (a[0], a[1]))
    assert [a for a in found if a[0] == "conf-app"] == [
        ("conf-app", "1.0", "conf.ns", "svc"), ("conf-app", "2.0", "conf.ns", "svc")
    ]  # fmt: skip


def _task_times(task: SimTask) -> tuple[Any, ...]:
    return (task.session_id, int(task.status), *(getattr(task, f) for f in TIME_FIELDS))


def _listed_times(task: Task) -> tuple[Any, ...]:
    return (task.session_id, int(task.status), *(micros(getattr(task, f)) for f in TIME_FIELDS))


def test_ground_truth_matches_list_tasks(fast: Plane, dag: Dag) -> None:
    truth = fast.truth(lambda sim: {t.task_id: _task_times(t) for t in sim.true_tasks()})
    settled = {TaskStatus.COMPLETED, TaskStatus.CANCELLED, TaskStatus.PENDING}
    assert {TaskStatus(times[1]) for times in truth.values()} <= settled

    listed: dict[str, tuple[Any, ...]] = {}
    page, total = 0, None
    while total is None or len(listed) < total:
        total, tasks = fast.tasks.list_tasks(page=page, page_size=4, detailed=False)
        assert tasks, "a page came back empty before the total was reached"
        listed |= {t.id: _listed_times(t) for t in tasks}
        page += 1
    assert total == len(truth) >= 3
    assert listed == truth


# --------------------------------------------------------------- failures, timeouts, subtasks


def submit_when_live(
    plane: Plane,
    session_id: str,
    definitions: list[TaskDefinition],
    done: Callable[[EventLog], bool],
    kinds: Iterable[int] = (),
) -> tuple[list[str], EventLog]:
    """Subscribe first, submit once the snapshot arrives, so no live event is missed.

    The session must hold a result already (the payloads do): its NEW_RESULT is the first event.
    """
    submitted: list[str] = []

    def live_done(log: EventLog) -> bool:
        if not submitted:
            submitted.extend(t.id for t in plane.tasks.submit_tasks(session_id, definitions))
        return done(log)

    log = EventLog()
    follow(plane, session_id, log.handler(live_done), kinds=kinds)
    return submitted, log


def _failing_simulator() -> Simulator:
    profile = TaskProfile(error_rate=1.0)
    return Simulator(speed=SPEED, start_us=START_US, default_profile=profile)


def _some_status(status: TaskStatus) -> Callable[[EventLog], bool]:
    return lambda log: status in log.task_status.values()


def test_failed_task_is_retried_up_to_max_retries() -> None:
    with _serve(_failing_simulator) as plane:
        options = TaskOptions(max_duration=timedelta(minutes=5), priority=1, max_retries=2)
        session_id = new_session(plane, options)
        definitions = simple_tasks(plane, session_id, 1, "failing")
        [first], log = submit_when_live(plane, session_id, definitions,
                                        _some_status(TaskStatus.ERROR))  # fmt: skip
        total, attempts = plane.tasks.list_tasks(
            Task.initial_task_id == first, sort_field=Task.created_at
        )
        assert total == 3
        assert [t.status for t in attempts] == [
            TaskStatus.RETRIED, TaskStatus.RETRIED, TaskStatus.ERROR
        ]  # fmt: skip
        ids = [t.id for t in attempts]
        assert [t.retry_of_ids for t in attempts] == [[], ids[:1], ids[:2]]
        assert {t.payload_id for t in attempts} == {definitions[0].payload_id}
        assert {tuple(t.expected_output_ids) for t in attempts} == {
            tuple(definitions[0].expected_output_ids)
        }  # fmt: skip
        assert attempts[-1].output.error
        new_tasks = {e.task_id: e.origin_task_id for k, e in log.events if k == EventTypes.NEW_TASK}
        assert new_tasks == dict.fromkeys(ids, first)

        with pytest.raises(RuntimeError, match="aborted"):
            wait_results(plane, session_id, definitions[0].expected_output_ids)


def test_task_exceeding_max_duration_times_out() -> None:
    with _serve(_failing_simulator) as plane:
        limit = timedelta(milliseconds=10)  # processing takes 50 ms
        options = TaskOptions(max_duration=limit, priority=1, max_retries=3)
        session_id = new_session(plane, options)
        definitions = simple_tasks(plane, session_id, 1, "slow")
        [task_id], _ = submit_when_live(plane, session_id, definitions,
                                        _some_status(TaskStatus.TIMEOUT))  # fmt: skip
        task = plane.tasks.get_task(task_id)
        assert task.status == TaskStatus.TIMEOUT
        assert task.processing_to_end_duration >= limit
        output = plane.results.get_result(definitions[0].expected_output_ids[0])
        assert output.status == ResultStatus.ABORTED


def _spawning_simulator() -> Simulator:
    profile = TaskProfile(subtask_depth=1, subtask_children=2)
    return Simulator(speed=SPEED, start_us=START_US, default_profile=profile)


def _handed_over_and_completed(count: int, output: str) -> Callable[[EventLog], bool]:
    """Every task completed, the output too, and its owner update seen (result events may lag)."""

    def done(log: EventLog) -> bool:
        tasks = log.task_status
        return (len(tasks) == count and set(tasks.values()) == {TaskStatus.COMPLETED}
                and log.result_status.get(output) == ResultStatus.COMPLETED
                and EventTypes.RESULT_OWNER_UPDATE in log.kinds())  # fmt: skip

    return done


def test_subtasks_take_over_their_parents_output() -> None:
    with _serve(_spawning_simulator) as plane:
        session_id = new_session(plane)
        definitions = simple_tasks(plane, session_id, 1, "parent")
        output = definitions[0].expected_output_ids[0]
        [parent_id], log = submit_when_live(
            plane, session_id, definitions, _handed_over_and_completed(3, output)
        )

        children = [e for k, e in log.events
                    if k == EventTypes.NEW_TASK and e.task_id != parent_id]  # fmt: skip
        assert len(children) == 2
        assert all(child.parent_task_ids == [parent_id] for child in children)
        [heir] = [child for child in children if child.expected_output_keys == [output]]
        owner_updates = [(e.result_id, e.previous_owner_id, e.current_owner_id)
                         for k, e in log.events if k == EventTypes.RESULT_OWNER_UPDATE]  # fmt: skip
        assert owner_updates == [(output, parent_id, heir.task_id)]
        assert plane.results.get_owner_task_id([output], session_id) == {output: heir.task_id}

        parent, child = plane.tasks.get_task(parent_id), plane.tasks.get_task(heir.task_id)
        assert child.created_by == parent_id
        assert child.created_at < parent.ended_at <= child.submitted_at
        payload = plane.results.download_result_data(child.payload_id, session_id)
        assert plane.results.download_result_data(output, session_id) == payload


def test_demo_partitions() -> None:
    with _serve(lambda: Simulator(builtin_scenario("demo"), start_us=START_US)) as plane:
        partitions = ArmoniKPartitions(plane.channel)
        total, listed = partitions.list_partitions(sort_direction=Direction.DESC)
        assert total == 3
        assert [p.priority for p in listed] == [2, 1, 1]
        assert listed[0].id == "pricing"
        pricing = partitions.get_partition("pricing")
        assert (pricing.pod_max, pricing.pod_reserved, pricing.priority) == (12, 1, 2)
        total, low = partitions.list_partitions(Partition.priority == 1)
        assert total == 2
        assert {p.id for p in low} == {"default", "risk-batch"}


# ------------------------------------------------------------------------------------- 6. events


def test_late_subscriber_gets_a_snapshot_with_current_statuses(fast: Plane, dag: Dag) -> None:
    results = {r.result_id: r.status for r in session_results(fast, dag.session_id).values()}
    tasks = {dag.t1: TaskStatus.COMPLETED, dag.t2: TaskStatus.COMPLETED,
             dag.blocked: TaskStatus.PENDING}  # fmt: skip
    log = EventLog()
    follow(fast, dag.session_id, log.handler(lambda log: len(log.result_status) == len(results)))

    assert log.kinds() == {EventTypes.NEW_TASK, EventTypes.NEW_RESULT}  # no past updates
    new_tasks = [event for kind, event in log.events if kind == EventTypes.NEW_TASK]
    assert {event.task_id: event.status for event in new_tasks} == tasks
    assert log.result_status == results
    t2 = next(event for event in new_tasks if event.task_id == dag.t2)
    assert t2.data_dependencies == [dag.results["t1-out"].result_id]
    assert t2.origin_task_id == dag.t2


def _message_types(descriptor: Any, seen: set[str]) -> set[str]:
    """Full names of every message type reachable from a descriptor."""
    if descriptor.full_name in seen:
        return seen
    seen.add(descriptor.full_name)
    for child in descriptor.fields:
        if child.message_type is not None:
            _message_types(child.message_type, seen)
    return seen


def test_events_carry_no_timestamp(fast: Plane, dag: Dag) -> None:
    response = events_common_pb2.EventSubscriptionResponse
    reachable = _message_types(response.DESCRIPTOR, set())
    assert not reachable & {"google.protobuf.Timestamp", "google.protobuf.Duration"}

    stub = events_service_pb2_grpc.EventsStub(fast.channel)
    request = events_common_pb2.EventSubscriptionRequest(session_id=dag.session_id)
    stream = stub.GetEvents(request, timeout=WAIT_S)
    try:
        first = next(stream)
    finally:
        stream.cancel()
    assert first.session_id == dag.session_id
    assert {f.name for f, _ in first.ListFields()} == {"session_id", "new_task"}


def test_returned_events_restrict_kinds(fast: Plane) -> None:
    session_id = new_session(fast)
    definitions = simple_tasks(fast, session_id, 1, "kinds")
    kinds = [EventTypes.NEW_RESULT, EventTypes.TASK_STATUS_UPDATE]
    [task_id], log = submit_when_live(
        fast, session_id, definitions, _some_status(TaskStatus.COMPLETED), kinds
    )
    # No NEW_TASK although the task was created while the stream was live.
    assert log.kinds() == {EventTypes.NEW_RESULT, EventTypes.TASK_STATUS_UPDATE}
    updates = [e.status for kind, e in log.events if kind == EventTypes.TASK_STATUS_UPDATE]
    assert updates[-1] == TaskStatus.COMPLETED

    only_tasks = EventLog()
    follow(fast, session_id, only_tasks.handler(lambda log: True), kinds=[EventTypes.NEW_TASK])
    assert only_tasks.events[0][0] == EventTypes.NEW_TASK
    assert only_tasks.task_status == {task_id: TaskStatus.COMPLETED}


def test_event_filters(fast: Plane, dag: Dag) -> None:
    def subscribe(**filters: Any) -> None:
        follow(fast, dag.session_id, lambda *_: True, **filters)

    completed = Task.status == TaskStatus.COMPLETED
    assert code_of(lambda: subscribe(task_filter=completed)) == grpc.StatusCode.INVALID_ARGUMENT
    done = Result.status == ResultStatus.COMPLETED
    assert code_of(lambda: subscribe(result_filter=done)) == grpc.StatusCode.INVALID_ARGUMENT

    def unknown_session() -> None:
        follow(fast, "no-such-session", lambda *_: True)

    assert code_of(unknown_session) == grpc.StatusCode.NOT_FOUND

    log = EventLog()
    results = len(dag.results)
    follow(fast, dag.session_id, log.handler(lambda log: len(log.result_status) == results),
           kinds=[EventTypes.NEW_TASK, EventTypes.NEW_RESULT], task_filter=Task.id == dag.blocked)
    assert list(log.task_status) == [dag.blocked]  # the filter on task id is accepted and applied


# ---------------------------------------------------------------------------- 5. session life cycle


def _until_queued(queued: int) -> Callable[[EventLog], bool]:
    return lambda log: (log.count(TaskStatus.PROCESSING) == SLOW_PODS
                        and log.count(TaskStatus.SUBMITTED) == queued)  # fmt: skip


def _start_queued(plane: Plane, prefix: str, queued: int) -> tuple[str, list[str]]:
    """A session whose tasks fill every slot, with `queued` more waiting in the queue."""
    session_id = new_session(plane, SLOW_OPTIONS)
    definitions = simple_tasks(plane, session_id, SLOW_PODS + queued, prefix)
    tasks = [t.id for t in plane.tasks.submit_tasks(session_id, definitions)]
    follow(plane, session_id, EventLog().handler(_until_queued(queued)))
    return session_id, tasks


def test_pause_and_resume_move_queued_tasks(slow: Plane) -> None:
    # The tasks of this session keep the slow simulator's slots busy for the rest of the module.
    sessions, queued = slow.sessions, 3
    session_id, tasks = _start_queued(slow, "paused", queued)
    failed = grpc.StatusCode.FAILED_PRECONDITION

    assert sessions.pause_session(session_id).status == SessionStatus.PAUSED
    assert session_counts(slow, session_id) == {
        TaskStatus.PROCESSING: SLOW_PODS, TaskStatus.PAUSED: queued
    }  # fmt: skip
    assert code_of(lambda: sessions.pause_session(session_id)) == failed

    assert sessions.resume_session(session_id).status == SessionStatus.RUNNING
    assert session_counts(slow, session_id) == {
        TaskStatus.PROCESSING: SLOW_PODS, TaskStatus.SUBMITTED: queued
    }  # fmt: skip
    assert code_of(lambda: sessions.resume_session(session_id)) == failed  # it is running

    histories = slow.truth(lambda sim: [list(sim.plane.tasks[t].history) for t in tasks])
    paused = [h for h in histories if TaskStatus.PAUSED in h]
    assert len(paused) == queued
    assert all(h[-3:] == [TaskStatus.SUBMITTED, TaskStatus.PAUSED, TaskStatus.SUBMITTED]
               for h in paused)  # fmt: skip


def test_cancel_purge_delete(slow: Plane) -> None:
    session_id = new_session(slow, SLOW_OPTIONS)
    tasks = [t.id for t in slow.tasks.submit_tasks(
        session_id, simple_tasks(slow, session_id, 3, "cancelled"))]  # fmt: skip

    cancelled = slow.sessions.cancel_session(session_id)
    assert cancelled.status == SessionStatus.CANCELLED
    assert cancelled.cancelled_at is not None
    assert cancelled.duration == cancelled.cancelled_at - cancelled.created_at
    assert session_counts(slow, session_id) == {TaskStatus.CANCELLED: len(tasks)}
    statuses = Counter(r.status for r in session_results(slow, session_id).values())
    assert statuses == {ResultStatus.COMPLETED: len(tasks), ResultStatus.ABORTED: len(tasks)}
    _purge_and_delete(slow, session_id, tasks)


def _stop_error(thread: SimulatorThread) -> BaseException | None:
    """Stop a simulator thread; return what its driver raised, if anything."""
    try:
        thread.close()
    except Exception as error:
        return error
    return None


def test_cancel_after_pause_and_resume_keeps_the_simulator_running() -> None:
    thread = SimulatorThread(_slow_simulator)
    sim = thread.__enter__()
    raw = grpc.insecure_channel(sim.target)
    try:
        plane = Plane(thread, sim, grpc.intercept_channel(raw, RECORDER))
        session_id, tasks = _start_queued(plane, "stale", 3)
        plane.sessions.pause_session(session_id)
        plane.sessions.resume_session(session_id)
        plane.sessions.cancel_session(session_id)
        assert session_counts(plane, session_id) == {TaskStatus.CANCELLED: len(tasks)}
    finally:
        raw.close()
        error = _stop_error(thread)
    assert error is None, f"the simulator's driver died: {error!r}"


def _purge_and_delete(plane: Plane, session_id: str, tasks: list[str]) -> None:
    purged = plane.sessions.purge_session(session_id)
    assert (purged.status, purged.purged_at is not None) == (SessionStatus.PURGED, True)
    payloads = [r for r in session_results(plane, session_id).values() if "payload" in r.name]
    assert payloads
    assert {r.status for r in payloads} == {ResultStatus.DELETED}
    with pytest.raises(grpc.RpcError):
        plane.results.download_result_data(payloads[0].result_id, session_id)

    deleted = plane.sessions.delete_session(session_id)
    assert (deleted.status, deleted.deleted_at is not None) == (SessionStatus.DELETED, True)
    total, _ = plane.tasks.list_tasks(Task.session_id == session_id)
    assert total == 0
    kept = plane.truth(lambda sim: {t.task_id for t in sim.true_tasks()})
    assert set(tasks) <= kept  # the ground truth keeps deleted sessions' tasks


def test_close_forbids_client_submission(slow: Plane) -> None:
    sessions = slow.sessions
    session_id = new_session(slow, SLOW_OPTIONS)
    definitions = simple_tasks(slow, session_id, 1, "closed")
    closed = sessions.close_session(session_id)
    assert closed.status == SessionStatus.CLOSED
    assert closed.closed_at is not None
    assert closed.duration == closed.closed_at - closed.created_at

    failed = grpc.StatusCode.FAILED_PRECONDITION
    assert code_of(lambda: slow.tasks.submit_tasks(session_id, definitions)) == failed
    assert code_of(lambda: slow.results.create_results_metadata(["late"], session_id)) == failed
    assert code_of(lambda: sessions.close_session(session_id)) == failed
    assert code_of(lambda: sessions.resume_session(session_id)) == failed
    _purge_and_delete(slow, session_id, [])


def test_stop_submission(slow: Plane) -> None:
    session_id = new_session(slow, SLOW_OPTIONS)
    definitions = simple_tasks(slow, session_id, 1, "stopped")
    stopped = slow.sessions.stop_submission_session(session_id, client=True, worker=False)
    assert stopped.status == SessionStatus.RUNNING
    assert (stopped.client_submission, stopped.worker_submission) == (False, True)
    code = code_of(lambda: slow.tasks.submit_tasks(session_id, definitions))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert slow.tasks.count_tasks_by_status(Task.session_id == session_id) == {}
    slow.sessions.cancel_session(session_id)


# ------------------------------------------------------------------------------- error statuses


def test_malformed_and_unknown_requests(fast: Plane) -> None:
    not_found, invalid = grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: fast.sessions.get_session("no-such-session")) == not_found
    assert code_of(lambda: fast.tasks.get_task("no-such-task")) == not_found
    assert code_of(lambda: fast.results.get_result("no-such-result")) == not_found
    unknown_partition = TaskOptions(
        max_duration=timedelta(minutes=1), priority=1, max_retries=0, partition_id="nowhere"
    )
    assert code_of(lambda: fast.sessions.create_session(unknown_partition)) == invalid

    sessions = sessions_service_pb2_grpc.SessionsStub(fast.channel)
    tasks = tasks_service_pb2_grpc.TasksStub(fast.channel)
    results = results_service_pb2_grpc.ResultsStub(fast.channel)
    partitions = partitions_service_pb2_grpc.PartitionsStub(fast.channel)
    applications = applications_service_pb2_grpc.ApplicationsStub(fast.channel)
    unsorted = [
        lambda: sessions.ListSessions(sessions_common_pb2.ListSessionsRequest(page_size=10)),
        lambda: tasks.ListTasks(tasks_common_pb2.ListTasksRequest(page_size=10)),
        lambda: results.ListResults(results_common_pb2.ListResultsRequest(page_size=10)),
        lambda: partitions.ListPartitions(partitions_common_pb2.ListPartitionsRequest()),
        lambda: applications.ListApplications(applications_common_pb2.ListApplicationsRequest()),
    ]
    assert [code_of(call) for call in unsorted] == [invalid] * len(unsorted)

    session_id = new_session(fast)
    payload = fast.results.create_results({"p": b"p"}, session_id)["p"].result_id
    no_output = tasks_common_pb2.SubmitTasksRequest(
        session_id=session_id,
        task_creations=[tasks_common_pb2.SubmitTasksRequest.TaskCreation(payload_id=payload)],
    )
    assert code_of(lambda: tasks.SubmitTasks(no_output)) == invalid


def test_submitter_is_unimplemented(fast: Plane) -> None:
    submitter = submitter_service_pb2_grpc.SubmitterStub(fast.channel)
    assert code_of(lambda: submitter.GetServiceConfiguration(objects_pb2.Empty())) == (
        grpc.StatusCode.UNIMPLEMENTED
    )


# ------------------------------------------------------------------------------------- coverage

SERVICE_MODULES = (
    applications_service_pb2, auth_service_pb2, events_service_pb2, health_checks_service_pb2,
    partitions_service_pb2, results_service_pb2, sessions_service_pb2, tasks_service_pb2,
    versions_service_pb2,
)  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def every_rpc_is_exercised(request: pytest.FixtureRequest) -> Iterator[None]:
    """After the module's tests: every RPC of the nine services was called at least once.

    Checked at module teardown, where a failure fails the run; when only some tests of the
    module are selected there is no coverage claim to check.
    """
    yield
    selected = {item.originalname for item in request.session.items
                if item.module is request.module}
    module_tests = {name for name in globals() if name.startswith("test_")}
    if selected >= module_tests:
        assert_every_rpc_called()


def assert_every_rpc_called() -> None:
    """Compare the RPCs called with the services' descriptors (Submitter excluded)."""
    expected = {
        f"/{service.full_name}/{method.name}"
        for module in SERVICE_MODULES
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert len(expected) == 35
    assert sorted(expected - CALLED) == []
