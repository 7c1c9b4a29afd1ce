"""A session's deadline, read from its task options, becomes
armonik_session_deadline_timestamp_seconds{session}."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from exporter_harness import exporter_for, sample, settle, settle_until

from armonik_observe.exporters.observed import ObservedState, parse_rfc3339
from armonik_observe.model import SessionInfo
from armonik_observe.pipeline import Batch
from armonik_observe.simulator.scenario import scenario_from_dict

DEADLINE_S = 90
SCENARIO = {
    "name": "deadline",
    "seed": 2,
    "partitions": [{"id": "cpu", "pods": 1}],
    "sessions": [{"name": "due", "partition": "cpu", "graph": {"kind": "bag", "tasks": 20},
                  "profile": {"processing": 1.0}, "deadline": DEADLINE_S},
                 {"name": "whenever", "partition": "cpu", "graph": {"kind": "bag", "tasks": 5},
                  "profile": {"processing": 1.0}}],
}
FAMILY = "armonik_session_deadline_timestamp_seconds"


@pytest.mark.parametrize(("text", "seconds"), [
    ("2030-01-31T18:00:00Z", 1_896_112_800.0),
    ("2030-01-31t18:00:00z", 1_896_112_800.0),
    ("2030-01-31T19:00:00.25+01:00", 1_896_112_800.25),
    ("2030-01-31 18:00:00+00:00", 1_896_112_800.0),
    ("2030-01-31T18:00:00", None),  # no offset: not RFC 3339, and ambiguous
    ("2030-01-31", None),
    ("tomorrow", None),
    ("", None),
])
def test_rfc3339_times_are_parsed_with_their_offset(text: str, seconds: float | None) -> None:
    assert parse_rfc3339(text) == seconds


async def test_the_deadline_option_is_exported_per_followed_session(manual_sim: Any) -> None:
    async with manual_sim(scenario_from_dict(SCENARIO)) as (sim, _), \
            exporter_for(sim) as exporter:
        await settle(exporter, 1)
        await sim.advance(2.0)
        await settle_followed(exporter, 2)
        by_group = {s.options.options["group"]: s for s in sim.true_sessions()}
        due = by_group["due"]
        assert due.options.options["deadline"].endswith("Z")
        got = sample(exporter, FAMILY, {"session": due.session_id})
        assert got == (due.created_at / 1e6) + DEADLINE_S
        # A session without the option has no deadline series.
        whenever = {"session": by_group["whenever"].session_id}
        assert exporter.registry.get_sample_value(FAMILY, whenever) is None


async def test_another_option_name_can_hold_the_deadline(manual_sim: Any) -> None:
    async with manual_sim(scenario_from_dict(SCENARIO)) as (sim, _), \
            exporter_for(sim, session_deadline_option="due-by") as exporter:
        await settle(exporter, 1)
        await sim.advance(2.0)
        await settle_followed(exporter, 2)
        assert not [s for s in exporter.registry.collect() if s.name == FAMILY and s.samples]


async def settle_followed(exporter: Any, sessions: int) -> None:
    """Settle until the counts of `sessions` followed sessions are in."""
    await settle_until(exporter, lambda: len(exporter.sink.state.session_counts) >= sessions)


def session(options: dict[str, str], status: str = "RUNNING") -> SessionInfo:
    return SessionInfo("s-1", status, ("cpu",), 0, options=tuple(sorted(options.items())))


def test_deadlines_follow_the_option_name_and_the_session_changes(
        caplog: pytest.LogCaptureFixture) -> None:
    state = ObservedState(deadline_option="due-by")
    state.update(Batch(sessions=[session({"due-by": "2030-01-31T18:00:00Z"})]))
    assert state.deadlines == {"s-1": 1_896_112_800.0}
    with caplog.at_level(logging.WARNING):
        state.update(Batch(sessions=[session({"due-by": "next friday"})]))
    assert state.deadlines == {}  # an unreadable deadline replaces the old one
    assert "due-by='next friday' is not an RFC 3339 time" in caplog.text
    state.update(Batch(sessions=[session({"deadline": "2030-01-31T18:00:00Z"})]))
    assert state.deadlines == {}  # not the option this state reads
