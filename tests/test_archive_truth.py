"""After a scenario ends, the archive an exporter wrote equals the simulator's ground truth:
every ended task exactly once with every field, every session, the results of ended sessions,
events of every kind, polls; through stream faults, failing RPCs, a control-plane restart and an
exporter restart."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from exporter_harness import archive_of, exporter_for, settle, settle_until
from test_archive_writer import fact, full_batch, micros_columns, result

from armonik_observe import archive
from armonik_observe.collectors.origin import FactsOrigin
from armonik_observe.model import TERMINAL_TASK_STATUSES, EventKind, SessionStatus
from armonik_observe.service import Exporter
from armonik_observe.simulator.events import (
    NEW_RESULT,
    NEW_TASK,
    RESULT_OWNER_UPDATE,
    RESULT_STATUS_UPDATE,
    TASK_STATUS_UPDATE,
)
from armonik_observe.simulator.faults import FaultPlan, RpcFaults
from armonik_observe.simulator.records import SimResult, SimTask
from armonik_observe.simulator.scenario import scenario_from_dict
from armonik_observe.simulator.server import Simulator

ENDED_SESSIONS = frozenset({"CANCELLED", "CLOSED", "PURGED"})
KIND_NAMES = {NEW_TASK: "NEW_TASK", TASK_STATUS_UPDATE: "TASK_STATUS_UPDATE",
              NEW_RESULT: "NEW_RESULT", RESULT_STATUS_UPDATE: "RESULT_STATUS_UPDATE",
              RESULT_OWNER_UPDATE: "RESULT_OWNER_UPDATE"}

# Retries (errors with max_retries), timeouts, subtasks (parents, owner hand-over), a fan-out
# (data dependencies), a cancelled session and generic task options on every task.
MIXED = scenario_from_dict({
    "name": "archive-mixed",
    "seed": 5,
    "partitions": [{"id": "cpu", "pods": 3}, {"id": "gpu", "pods": 2, "slots": 2}],
    "sessions": [
        {"name": "pricing", "partition": "cpu", "count": 2, "every": 4,
         "graph": {"kind": "bag", "tasks": 40}, "application": {"name": "pricing",
                                                                "version": "2.1.0"},
         "profile": {"processing": {"kind": "lognormal", "mean": 0.6, "spread": 0.6},
                     "error_rate": 0.2, "timeout_rate": 0.03},
         "max_retries": 1, "max_duration": 2.5, "priority": 3},
        {"name": "risk", "partition": "gpu", "start": 1,
         "graph": {"kind": "fanout", "tasks": 25}, "application": {"name": "risk"},
         "profile": {"processing": {"kind": "exponential", "mean": 1}}},
        {"name": "dag", "partition": "cpu", "start": 2,
         "graph": {"kind": "subtasking", "tasks": 3},
         "profile": {"processing": 0.5, "subtask_depth": 2, "subtask_children": 2}},
        {"name": "doomed", "partition": "gpu", "start": 3, "close_when_done": False,
         "graph": {"kind": "bag", "tasks": 12}, "profile": {"processing": 2},
         "lifecycle": [{"action": "cancel", "at": 3}]},
    ],
})

# A first session, then a second that starts and ends while no exporter runs.
TWO_PHASES = scenario_from_dict({
    "name": "two-phases",
    "seed": 9,
    "partitions": [{"id": "cpu", "pods": 3}],
    "sessions": [
        {"name": "early", "partition": "cpu", "graph": {"kind": "bag", "tasks": 40},
         "profile": {"processing": {"kind": "exponential", "mean": 0.5}, "error_rate": 0.1},
         "max_retries": 1},
        {"name": "unseen", "partition": "cpu", "start": 30,
         "graph": {"kind": "fanout", "tasks": 10}, "profile": {"processing": 0.3}},
        {"name": "late", "partition": "cpu", "start": 34,
         "graph": {"kind": "subtasking", "tasks": 2},
         "profile": {"processing": 0.4, "subtask_depth": 1, "subtask_children": 2}},
    ],
})


# -- driving ----------------------------------------------------------------------------------


async def advance(sim: Simulator, exporter: Exporter, seconds: float) -> None:
    """Advance the simulator a second at a time, letting the exporter poll between steps."""
    for _ in range(int(seconds)):
        await sim.advance(1.0)
        await settle(exporter, 1)


async def run_to_end(sim: Simulator, exporter: Exporter) -> None:
    while sim.scheduler.next_due() is not None:
        await sim.advance(1.0)
        await settle(exporter, 1)


async def catch_up(exporter: Exporter) -> None:
    """Every poller succeeded after the scenario ended, then the archive is flushed."""
    await settle_until(exporter, lambda: all(p.ok for p in exporter.pollers))
    await settle(exporter)
    await settle_until(exporter, lambda: all(p.ok for p in exporter.pollers))
    await archive_of(exporter).flush()


def ended_total(exporter: Exporter) -> float:
    """armonik_tasks_ended_total summed over its labels."""
    return sum(sample.value for family in exporter.registry.collect()
               if family.name == "armonik_tasks_ended"
               for sample in family.samples if sample.name == "armonik_tasks_ended_total")


def archive_settings(directory: Path) -> dict[str, Any]:
    return {"archive": directory, "archive_flush_interval": 0.2}


# -- reading ----------------------------------------------------------------------------------


def rows(directory: Path, sql: str) -> list[dict[str, Any]]:
    """Rows of a query, timestamps as epoch microseconds."""
    with archive.open(directory) as opened:
        table = opened.connection.sql(sql).to_arrow_table()
    return micros_columns(table).to_pylist()


def scalar(directory: Path, sql: str) -> Any:
    return archive.open(directory).query(sql)[0][0]


def ended(sim: Simulator) -> list[SimTask]:
    return [t for t in sim.true_tasks() if t.status in TERMINAL_TASK_STATUSES]


def seconds(micros: int | None) -> float | None:
    return None if micros is None else micros / 1_000_000


def option_seconds(duration: Any) -> float | None:
    micros = int(duration.seconds) * 1_000_000 + int(duration.nanos) // 1000
    return None if micros == 0 else micros / 1_000_000


def expected_row(task: SimTask) -> dict[str, Any]:
    """The archived row the ground truth implies for an ended task."""
    options = task.options
    return {
        "task_id": task.task_id,
        "session_id": task.session_id,
        "initial_task_id": task.initial_task_id,
        "payload_id": task.payload_id,
        "created_by": task.created_by,
        "partition_id": options.partition_id,
        "max_duration_seconds": option_seconds(options.max_duration),
        "max_retries": options.max_retries,
        "priority": options.priority,
        "application_name": options.application_name,
        "application_version": options.application_version,
        "application_namespace": options.application_namespace,
        "application_service": options.application_service,
        "options": dict(options.options),
        "status": task.status.name,
        "status_message": task.status_message,
        "error": task.output_error,
        **{f"{name}_at": getattr(task, f"{name}_at") for name in (
            "created", "submitted", "received", "acquired", "fetched", "started", "processed",
            "ended")},
        "creation_to_end_seconds": seconds(task.creation_to_end),
        "processing_to_end_seconds": seconds(task.processing_to_end),
        "received_to_end_seconds": seconds(task.received_to_end),
        "pod_hostname": task.pod_hostname,
        "owner_pod_id": task.owner_pod_id,
        "retry_of_ids": list(task.retry_of_ids),
        "parent_task_ids": list(task.parent_task_ids),
        "data_dependencies": list(task.data_dependencies),
        "expected_output_ids": list(task.expected_output_ids),
    }


def archived_row(row: dict[str, Any]) -> dict[str, Any]:
    """An archived task row in the shape of `expected_row` (the options map as a dict)."""
    shaped = {key: value for key, value in row.items() if key != "observed_at"}
    shaped["options"] = dict(row["options"] or [])
    return shaped


def assert_tasks_equal_the_truth(directory: Path, truth: list[SimTask]) -> None:
    archived = rows(directory, "SELECT * FROM tasks")
    ids = Counter(row["task_id"] for row in archived)
    assert [task for task, count in ids.items() if count > 1] == []
    expected = {task.task_id: expected_row(task) for task in truth}
    assert sorted(ids) == sorted(expected), (
        f"missing {len(set(expected) - set(ids))}, unexpected {len(set(ids) - set(expected))}")
    durations = ("max_duration_seconds", "creation_to_end_seconds", "processing_to_end_seconds",
                 "received_to_end_seconds")
    for row in archived:
        got, want = archived_row(row), expected[row["task_id"]]
        assert set(got) == set(want)
        for key, value in want.items():
            if key in durations and value is not None and got[key] is not None:
                assert abs(got[key] - value) < 1e-6, (row["task_id"], key, got[key], value)
            else:
                assert got[key] == value, (row["task_id"], key, got[key], value)


def assert_lists_are_not_trivial(truth: list[SimTask]) -> None:
    """The scenario exercised what the lists carry."""
    assert any(t.retry_of_ids for t in truth)
    assert any(len(t.parent_task_ids) >= 2 for t in truth)
    assert any(len(t.data_dependencies) >= 10 for t in truth)
    assert any(t.created_by for t in truth)
    assert {t.status.name for t in truth} >= {"COMPLETED", "ERROR", "RETRIED", "TIMEOUT",
                                              "CANCELLED"}


def expected_result(result: SimResult) -> dict[str, Any]:
    return {"session_id": result.session_id, "result_id": result.result_id, "name": result.name,
            "owner_task_id": result.owner_task_id, "status": result.status.name,
            "created_at": result.created_at, "completed_at": result.completed_at,
            "size": result.size, "created_by": result.created_by,
            "opaque_id": result.opaque_id.hex(), "manual_deletion": result.manual_deletion}


def assert_results_equal_the_truth(directory: Path, sim: Simulator,
                                   sessions: set[str]) -> None:
    truth = {r.result_id: expected_result(r) for r in sim.plane.results.values()
             if r.session_id in sessions}
    archived = rows(directory, "SELECT * FROM results")
    got = {row["result_id"]: {k: v for k, v in row.items() if k != "observed_at"}
           for row in archived}
    assert len(got) == len(archived)
    assert sorted(got) == sorted(truth)
    for result_id, want in truth.items():
        assert got[result_id] == want, result_id


# -- the tests --------------------------------------------------------------------------------


async def test_the_archive_equals_the_truth_through_faults_and_a_restart(
    manual_sim: Any, tmp_path: Path
) -> None:
    directory = tmp_path / "archive"
    plan = FaultPlan(cut_after=150, cut_rate=0.02, duplicates=0.05, reorder=0.05,
                     rpcs={"ListTasksDetailed": RpcFaults(unavailable=0.2)})
    async with (
        manual_sim(MIXED, faults=plan) as (sim, _),
        exporter_for(sim, **archive_settings(directory)) as exporter,
    ):
        await settle(exporter, 1)
        await advance(sim, exporter, 6)
        ended_before = len(ended(sim))
        async with sim.down():
            await sim.advance(4)  # tasks end and sessions close while nobody can see them
            await settle(exporter)
        assert len(ended(sim)) > ended_before
        await run_to_end(sim, exporter)
        await catch_up(exporter)

        truth = ended(sim)
        assert len(truth) == len(sim.true_tasks()) > 150  # the scenario is over
        assert_lists_are_not_trivial(truth)
        assert_tasks_equal_the_truth(directory, truth)
        # The facts are read once each: even the raw rows hold no duplicate.
        assert scalar(directory, "SELECT count(*) FROM tasks_raw") == len(truth)

        sessions = {s.session_id: s for s in sim.true_sessions()}
        archived = rows(directory, "SELECT * FROM sessions")
        assert sorted(r["session_id"] for r in archived) == sorted(sessions)
        for row in archived:
            record = sessions[row["session_id"]]
            assert row["status"] == record.status.name
            assert (row["created_at"], row["closed_at"], row["cancelled_at"]) == (
                record.created_at, record.closed_at, record.cancelled_at)
            assert row["duration_seconds"] == seconds(record.duration)
            assert row["first_seen"] <= row["last_seen"]
        statuses = Counter(r["status"] for r in archived)
        assert statuses == Counter({"CLOSED": 4, "CANCELLED": 1})

        ended_sessions = {sid for sid, s in sessions.items() if s.status.name in ENDED_SESSIONS}
        assert ended_sessions == set(sessions)
        assert_results_equal_the_truth(directory, sim, ended_sessions)
        owners = scalar(directory, "SELECT count(*) FROM events WHERE kind = "
                                   "'RESULT_OWNER_UPDATE' AND previous_owner_id <> ''")
        assert owners > 0

        kinds = {row["kind"] for row in rows(directory, "SELECT DISTINCT kind FROM events")}
        occurred = {KIND_NAMES[e.kind] for e in sim.emitted_events()}
        assert kinds == occurred == {kind.name for kind in EventKind}

        counts = rows(directory, "SELECT DISTINCT scope, key FROM task_counts")
        assert {(r["scope"], r["key"]) for r in counts} >= {("partition", "cpu"),
                                                             ("partition", "gpu")}
        health = rows(directory, "SELECT service, status FROM health")
        assert {r["service"] for r in health} == {"database", "object", "queue"}
        assert {r["status"] for r in health} == {"HEALTHY"}


async def test_writing_the_same_batch_twice_duplicates_nothing(
    manual_sim: Any, tmp_path: Path
) -> None:
    directory = tmp_path / "archive"
    batch = full_batch(session="s-dup", tasks=30)
    batch.results = [result(n, session="s-dup") for n in range(10)]
    async with manual_sim() as (sim, _), exporter_for(sim, **archive_settings(directory)) as exp:
        await settle(exp)
        await archive_of(exp).flush()
        before = {name: scalar(directory, f"SELECT count(*) FROM {name}")
                  for name in ("tasks", "sessions", "results")}
        archive_of(exp).consume(batch)
        archive_of(exp).consume(batch)
        await archive_of(exp).flush()
        assert scalar(directory, "SELECT count(*) FROM tasks_raw WHERE session_id = 's-dup'") == 60
        assert scalar(directory, "SELECT count(*) FROM tasks") == before["tasks"] + 30
        assert scalar(directory, "SELECT count(DISTINCT task_id) FROM tasks") == \
            before["tasks"] + 30
        assert scalar(directory, "SELECT count(*) FROM results") == before["results"] + 10
        assert scalar(directory, "SELECT count(*) FROM sessions WHERE session_id = 's-dup'") == 1
        # The view keeps the row as written.
        [row] = rows(directory, "SELECT * FROM tasks WHERE task_id = 'task-000003'")
        original = fact(3, session="s-dup")
        assert row["ended_at"] == original.ended_at
        assert row["parent_task_ids"] == list(original.parent_task_ids or ())


async def test_a_new_exporter_resumes_from_the_archive_watermark(
    manual_sim: Any, tmp_path: Path
) -> None:
    directory = tmp_path / "archive"
    async with manual_sim(TWO_PHASES) as (sim, _):
        async with exporter_for(sim, **archive_settings(directory)) as first:
            await settle(first, 1)
            await advance(sim, first, 12)
            await settle(first)
            first_floor = first.facts.start_point()
        watermark = archive.open(directory).watermark_us()
        archived_first = {r["task_id"] for r in rows(directory, "SELECT task_id FROM tasks")}
        assert watermark is not None and archived_first
        assert watermark == max(t.ended_at or 0 for t in ended(sim))
        assert {t.task_id for t in ended(sim)} == archived_first

        # Nobody watches: the first session ends, the second starts and ends.
        await sim.advance_to(sim.clock.now_us() + 36 * 1_000_000)
        by_name = dict(zip(("early", "unseen", "late"), sim.workload.session_ids, strict=False))
        unseen = by_name["unseen"]
        assert sim.plane.sessions[unseen].record.status == SessionStatus.CLOSED
        unseen_tasks = [t for t in ended(sim) if t.session_id == unseen]
        assert unseen_tasks and all(t.ended_at > watermark for t in unseen_tasks)
        ended_meanwhile = [t for t in ended(sim) if t.task_id not in archived_first]
        assert len(ended_meanwhile) > len(unseen_tasks)

        async with exporter_for(sim, **archive_settings(directory)) as second:
            await settle(second, 1)
            # Resumed at the archive's watermark (re-read from the overlap below it, for ends
            # written late), counting from the first exporter's floor; what the archive holds
            # in the overlap was counted by the first exporter.
            overlap = [t for t in ended(sim) if t.task_id in archived_first
                       and t.ended_at >= watermark - second.facts.overlap_us]
            assert overlap
            assert second.facts.origin == FactsOrigin(
                first_floor, watermark, {t.task_id: t.ended_at for t in overlap})
            await run_to_end(sim, second)
            await catch_up(second)
            # Counted once across the restart: a Prometheus increase() over both runs adds the
            # second's counter to the first's, so the second counts only what the first missed.
            assert ended_total(second) == len(ended(sim)) - len(archived_first)

        truth = ended(sim)
        assert len(truth) == len(sim.true_tasks())
        assert_tasks_equal_the_truth(directory, truth)
        assert scalar(directory, f"SELECT count(*) FROM tasks WHERE session_id = '{unseen}'") \
            == len(unseen_tasks)
        [session] = rows(directory, f"SELECT * FROM sessions WHERE session_id = '{unseen}'")
        assert session["status"] == "CLOSED"
        assert session["closed_at"] == sim.plane.sessions[unseen].record.closed_at
        # Results of every session that ended after the first exporter's start point.
        assert_results_equal_the_truth(directory, sim, set(sim.workload.session_ids))



# Session A ends early; session B keeps ending tasks after A closed.
OVERLAPPING = scenario_from_dict({
    "name": "overlapping",
    "seed": 3,
    "partitions": [{"id": "cpu", "pods": 2}],
    "sessions": [
        {"name": "short", "partition": "cpu", "graph": {"kind": "bag", "tasks": 4},
         "profile": {"processing": 0.5}},
        {"name": "long", "partition": "cpu", "start": 1, "graph": {"kind": "chain", "tasks": 12},
         "profile": {"processing": 1.0}},
    ],
})



async def test_results_of_a_session_not_swept_before_a_restart_are_archived_after(
    manual_sim: Any, tmp_path: Path
) -> None:
    directory = tmp_path / "archive"
    plan = FaultPlan(rpcs={"ListResults": RpcFaults(unavailable=1.0)})
    async with manual_sim(OVERLAPPING, faults=plan) as (sim, _):
        async with exporter_for(sim, **archive_settings(directory)) as first:
            await settle(first, 1)
            await advance(sim, first, 6)
            short = sim.plane.sessions[sim.workload.session_ids[0]].record
            assert short.status == SessionStatus.CLOSED and short.closed_at is not None
            await settle(first)
            assert not next(p for p in first.pollers if p.name == "results").ok
        watermark = archive.open(directory).watermark_us()
        assert watermark is not None and watermark > short.closed_at  # `long` went on

        plan.rpcs.clear()  # ListResults answers again
        async with exporter_for(sim, **archive_settings(directory)) as second:
            await run_to_end(sim, second)
            await catch_up(second)
        assert_tasks_equal_the_truth(directory, ended(sim))
        expected = len(sim.plane.session_results(short.session_id))
        archived = scalar(directory, "SELECT count(*) FROM results WHERE session_id = "
                                     f"'{short.session_id}'")
        assert archived == expected > 0
        assert_results_equal_the_truth(directory, sim, set(sim.workload.session_ids))
