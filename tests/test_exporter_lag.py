"""Event stream lag, read against task facts, and degradation of a stream that falls behind."""

from __future__ import annotations

import dataclasses
from typing import Any

from exporter_harness import exporter_for, sample, settle

from armonik_observe.collectors.lag import LagMonitor
from armonik_observe.fact_columns import TaskFacts
from armonik_observe.model import TaskFact
from armonik_observe.simulator.scenario import scenario_from_dict

SECOND = 1_000_000
FACT = TaskFact(
    task_id="t", session_id="s", status="COMPLETED", partition_id="p", application_name="a",
    application_version="1", created_at=0, submitted_at=0, received_at=0, acquired_at=0,
    fetched_at=0, started_at=0, processed_at=0, ended_at=0, creation_to_end=0,
    processing_to_end=0, received_to_end=0,
)


def ended(task_id: str, at_s: float, session: str = "s") -> TaskFact:
    return dataclasses.replace(FACT, task_id=task_id, session_id=session,
                               ended_at=int(at_s * SECOND))


def test_a_stream_that_keeps_up_has_no_lag() -> None:
    monitor = LagMonitor()
    monitor.note_facts(TaskFacts.of([ended("a", 10), ended("b", 11)]), {"s"}, lambda s, t: True)
    assert monitor.lag_seconds("s") == 0.0


def test_lag_is_the_span_of_undelivered_ends_in_server_time() -> None:
    monitor = LagMonitor()
    facts = [ended("a", 100), ended("b", 130), ended("c", 160)]
    monitor.note_facts(TaskFacts.of(facts), {"s"}, lambda s, t: t == "c")
    assert monitor.lag_seconds("s") == 60.0
    monitor.delivered("s", "a")
    assert monitor.lag_seconds("s") == 30.0
    monitor.delivered("s", "b")
    assert monitor.lag_seconds("s") == 0.0


def test_unfollowed_sessions_and_forgotten_ones_have_no_lag() -> None:
    monitor = LagMonitor()
    facts = TaskFacts.of([ended("a", 1, "other"), ended("b", 1), ended("c", 50)])
    monitor.note_facts(facts, {"s"}, lambda s, t: False)
    assert monitor.lag_seconds("other") == 0.0
    assert monitor.lag_seconds("s") == 49.0
    monitor.forget("s")
    assert monitor.lag_seconds("s") == 0.0


def test_ends_a_cut_stream_never_delivers_are_dropped_after_a_while() -> None:
    monitor = LagMonitor()
    monitor.note_facts(TaskFacts.of([ended("lost", 1)]), {"s"}, lambda s, t: False)
    monitor.note_facts(TaskFacts.of([ended("new", 3600)]), {"s"}, lambda s, t: True)
    assert monitor.lag_seconds("s") == 0.0


BAG = {
    "name": "bag",
    "partitions": [{"id": "default", "pods": 2}],
    "sessions": [{"name": "bag", "partition": "default", "graph": {"kind": "bag", "tasks": 20},
                  "profile": {"processing": 30.0}, "close_when_done": False}],
}


async def test_a_stream_too_far_behind_is_degraded_then_retried(manual_sim: Any) -> None:
    async with manual_sim(scenario_from_dict(BAG)) as (sim, _):
        await sim.advance(1)
        async with exporter_for(sim, max_event_lag=5) as exporter:
            await settle(exporter)
            streams = exporter.streams
            streams.degraded_for = 0.2
            (session_id,) = streams.trackers
            assert streams.states[session_id] == "connected"
            # Facts show two ends 60 s apart that the stream never delivered.
            streams.note_facts(TaskFacts.of([ended("x", 1, session_id),
                                              ended("y", 61, session_id)]))
            assert streams.lag_by_session()[session_id] == 60.0
            await streams.wait_for_state(session_id, "degraded")
            await settle(exporter, 1)
            assert sample(exporter, "armonik_observe_event_streams", {"state": "degraded"}) == 1
            assert session_id not in streams.trackers
            await streams.wait_for_state(session_id, "connected")
            assert streams.lag_by_session()[session_id] == 0.0
