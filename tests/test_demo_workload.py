"""The demo never goes flat: played for hours, every window has every kind of event, task status
and session status, on every partition, and its state stays bounded by the TTL."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import START_US
from exporter_harness import exporter_for, settle, wait_until

from armonik_observe.config import DEMO_DEFAULTS, SimulatorSettings
from armonik_observe.exporters.metrics_table import METRICS
from armonik_observe.model import ResultStatus, SessionStatus, TaskStatus
from armonik_observe.runner import build_simulator
from armonik_observe.simulator import events as ev
from armonik_observe.simulator.builtin import builtin_scenario
from armonik_observe.simulator.clock import MICROS
from armonik_observe.simulator.scenario import (
    ScenarioError,
    load_scenario_file,
    scenario_from_dict,
)
from armonik_observe.simulator.server import Simulator

WINDOW_S = 300  # shorter than the demo's TTL: what a window created is still held at its end
STEP_S = 5
WINDOWS = 18  # an hour and a half
# Every status the simulator gives a task (PROCESSED and CANCELLING are never written by it).
TASK_STATUSES = {TaskStatus.CREATING, TaskStatus.PENDING, TaskStatus.PAUSED,
                 TaskStatus.SUBMITTED, TaskStatus.DISPATCHED, TaskStatus.PROCESSING,
                 TaskStatus.COMPLETED, TaskStatus.ERROR, TaskStatus.TIMEOUT,
                 TaskStatus.CANCELLED, TaskStatus.RETRIED}
# Seen at some sample of every window: on every partition, and on one at least.
EVERY_PARTITION = {TaskStatus.SUBMITTED, TaskStatus.PROCESSING}
SOME_PARTITION = {TaskStatus.PENDING, TaskStatus.PAUSED, *EVERY_PARTITION}
SESSION_STATUSES = {SessionStatus.RUNNING, SessionStatus.PAUSED, SessionStatus.CLOSED,
                    SessionStatus.CANCELLED, SessionStatus.PURGED, SessionStatus.DELETED}
RESULT_STATUSES = {ResultStatus.CREATED, ResultStatus.COMPLETED, ResultStatus.ABORTED,
                   ResultStatus.DELETED}
# Families no workload moves: constants of the plane or the build, what only a fault or a limit
# moves, and the archive's size, measured at its upkeep (every 5 minutes).
STILL = {"armonik_up", "armonik_service_health", "armonik_api_info", "armonik_core_info",
         "armonik_partition_pod_max", "armonik_partition_pod_reserved",
         "armonik_partition_priority", "armonik_observe_build_info",
         "armonik_observe_stream_reconnects", "armonik_observe_unfollowed_sessions",
         "armonik_observe_collector_errors", "armonik_observe_spans_dropped",
         "armonik_observe_archive_rows", "armonik_observe_archive_bytes",
         "armonik_observe_archive_dropped_rows", "armonik_observe_archive_write_errors"}
# Families that move on one partition at least, not necessarily on each.
ANY_PARTITION = {"armonik_tasks_stuck"}
Snapshot = frozenset[tuple[str, tuple[tuple[str, str], ...], float]]


def demo_ttl_seconds() -> float:
    """The demo's default TTL, as the CLI parses it."""
    return SimulatorSettings.build(scenario="demo", faults="",
                                   ttl=DEMO_DEFAULTS["ttl"]).ttl.total_seconds()


def count_published(sim: Simulator) -> Counter[int]:
    """Count every event the plane publishes, by kind (what a subscriber of each session gets)."""
    kinds: Counter[int] = Counter()
    bus = sim.bus

    def counted(publish: Callable[..., None], kind_of: Callable[..., int]) -> Callable[..., None]:
        def wrapper(*args: Any) -> None:
            kinds[kind_of(*args)] += 1
            publish(*args)
        return wrapper

    bus.publish_task = counted(bus.publish_task, lambda kind, _: kind)  # type: ignore[method-assign]
    bus.publish_result = counted(bus.publish_result,  # type: ignore[method-assign]
                                 lambda kind, _: kind)
    bus.publish_owner_update = counted(  # type: ignore[method-assign]
        bus.publish_owner_update, lambda *_: ev.RESULT_OWNER_UPDATE)
    return kinds


async def test_the_demo_stays_lively_and_bounded_for_hours(manual_sim: Any) -> None:
    demo = builtin_scenario("demo")
    partitions = {p.id for p in demo.partitions}
    async with manual_sim(demo, ttl=demo_ttl_seconds(), record_events=False) as (sim, _):
        published = count_published(sim)
        held: list[tuple[int, int, int, int]] = []
        for window in range(WINDOWS):
            begin = sim.clock.now_us()
            published.clear()
            in_flight: set[tuple[str, TaskStatus]] = set()
            sessions: set[SessionStatus] = set()
            results: set[ResultStatus] = set()
            for _ in range(WINDOW_S // STEP_S):
                await sim.advance(STEP_S)
                in_flight |= {(t.partition_id, t.status) for t in sim.plane.tasks.values()}
                sessions |= {s.status for s in sim.true_sessions()}
                results |= {r.status for r in sim.plane.results.values()}
            plane = sim.plane
            held.append((len(plane.tasks), len(plane.results), len(plane.sessions),
                         len(sim.scheduler)))
            made = [t for t in sim.true_tasks() if t.created_at >= begin]
            where = f"window {window}"
            assert {s for t in made for s in t.history} == TASK_STATUSES, where
            assert {(p, s) for p in partitions for s in EVERY_PARTITION} <= in_flight, where
            assert {s for _, s in in_flight} >= SOME_PARTITION, where
            assert any(t.created_by for t in made) and any(t.retry_of_ids for t in made), where
            assert set(published) == set(ev.ALL_KINDS), where
            assert sessions == SESSION_STATUSES, where
            assert results == RESULT_STATUSES, where
        assert plane.expired_tasks > 50_000 and plane.expired_sessions > 500
    # After the first TTL, what the plane holds no longer grows: it is the TTL's worth of work.
    settled = held[len(held) // 3:]
    for column in range(4):
        first, last = max(h[column] for h in settled[:6]), max(h[column] for h in settled[6:])
        assert last <= first * 1.25, (column, held)
    assert max(h[0] for h in settled) < 15_000


async def test_the_demo_is_never_ahead_of_the_wall_clock_at_its_default_speed() -> None:
    assert DEMO_DEFAULTS["speed"] == 1
    settings = SimulatorSettings.build(scenario="demo", faults="", listen="127.0.0.1:0",
                                       speed=DEMO_DEFAULTS["speed"], ttl=DEMO_DEFAULTS["ttl"])
    started = time.time() * MICROS  # before the simulator's clock starts: its t=0 is later
    async with build_simulator(settings) as sim:
        await wait_until(lambda: any(t.ended_at for t in sim.true_tasks()), within=30)
        await asyncio.sleep(0.5)  # a moving workload, read while it moves
        tasks = sim.true_tasks()
        now = time.time() * MICROS
    stamps = [getattr(t, name) for t in tasks for name in
              ("created_at", "submitted_at", "received_at", "acquired_at", "fetched_at",
               "started_at", "processed_at", "ended_at")]
    known = [stamp for stamp in stamps if stamp is not None]
    assert len(known) > 100
    assert started <= min(known) and max(known) <= now


async def test_a_group_with_count_null_opens_sessions_for_ever(manual_sim: Any) -> None:
    scenario = scenario_from_dict({
        "name": "forever", "partitions": [{"id": "default"}],
        "sessions": [{"name": "s", "partition": "default", "count": None, "start": 2,
                      "every": 10, "graph": {"kind": "bag", "tasks": 2}}]})
    async with manual_sim(scenario) as (sim, _):
        await sim.advance(1000)
        opened = [s.created_at for s in sim.true_sessions()]
        assert sorted(opened) == [START_US + (2 + 10 * i) * MICROS for i in range(100)]
        assert not sim.workload.finished
        assert len(sim.scheduler) < 5  # one arrival pending, not every future one


@pytest.mark.parametrize(("count", "every", "message"), [
    ("0", "10", "sessions[0].count: must be at least 1, or null for ever"),
    ("null", "0", "sessions[0].every: must be positive when sessions repeat for ever"),
    ("many", "10", "sessions[0].count: expected int, got str 'many'"),
])
def test_a_bad_count_is_refused(tmp_path: Path, count: str, every: str, message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(f"partitions: [{{id: p}}]\nsessions: [{{name: s, partition: p, "
                    f"count: {count}, every: {every}}}]\n")
    with pytest.raises(ScenarioError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_scenario_file(path)


def test_count_null_in_a_file_means_for_ever(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("partitions: [{id: p}]\nsessions: [{name: s, partition: p, count: null}]\n")
    assert load_scenario_file(path).sessions[0].count is None


def snapshots(registry: Any, partitions: set[str]) -> dict[str, Snapshot]:
    """Every family's samples; families with a partition label also per partition, keyed
    `family@partition`; the official exporter's names by their own name."""
    taken: dict[str, set[tuple[str, tuple[tuple[str, str], ...], float]]] = {}
    for family in registry.collect():
        for sample in family.samples:
            entry = (sample.name, tuple(sorted(sample.labels.items())), sample.value)
            taken.setdefault(family.name, set()).add(entry)
            if "partition" in sample.labels:
                taken.setdefault(f"{family.name}@{sample.labels['partition']}", set()).add(entry)
    return {name: frozenset(entries) for name, entries in taken.items()}


def expected_to_move(partitions: set[str]) -> set[str]:
    """What the demo must move: every family of the metric table but the still ones, on every
    partition when it has a partition label; the official names by their queued count."""
    names = {"armonik_tasks_queued", *(f"armonik_{p.replace('-', '_')}_tasks_queued"
                                       for p in partitions)}
    for spec in METRICS:
        if spec.source == "compat" or spec.name in STILL:
            continue
        names.add(spec.name)
        if "partition" in spec.labels and spec.name not in ANY_PARTITION:
            names |= {f"{spec.name}@{p}" for p in partitions}
    return names


async def test_the_demo_moves_every_metric_its_workload_can_move(
    manual_sim: Any, tmp_path: Path
) -> None:
    demo = builtin_scenario("demo")
    partitions = {p.id for p in demo.partitions}
    changes: Counter[str] = Counter()
    async with (
        manual_sim(demo, ttl=demo_ttl_seconds(), record_events=False) as (sim, _),
        exporter_for(sim, archive=tmp_path / "archive",
                     traces_file=tmp_path / "spans.jsonl", archive_flush_interval=0.5) as exporter,
    ):
        await settle(exporter, 1)
        before = snapshots(exporter.registry, partitions)
        for _ in range(60):  # two simulated minutes
            await sim.advance(2.0)
            await settle(exporter, 1)
            after = snapshots(exporter.registry, partitions)
            changes.update(name for name in after if after[name] != before.get(name))
            before = after
    # Moving means changing again and again, not once at start (stuck tasks are recounted
    # every 10 s).
    still = {name for name in expected_to_move(partitions) if changes[name] < 3}
    assert not still, sorted(still)
