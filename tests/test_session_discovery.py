"""Session discovery costs the active sessions and the changes, never the history (issue 15)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from exporter_harness import exporter_for, sample, settle
from test_archive_truth import archive_settings, catch_up, rows

from armonik_observe.collectors.session_census import STATUSES, SessionCensus
from armonik_observe.model import SessionInfo
from armonik_observe.service import Exporter
from armonik_observe.simulator.scenario import scenario_from_dict
from armonik_observe.simulator.server import Simulator

SECOND = 1_000_000
HISTORY = 20_000


def with_history(sessions: int, *live: dict[str, Any]) -> Any:
    """`sessions` one-task sessions, closed 200 s into the scenario, then the `live` ones."""
    return scenario_from_dict({
        "name": "history", "seed": 1,
        "partitions": [{"id": "default", "pods": 50, "slots": 4}],
        "sessions": [{"name": "old", "partition": "default", "count": sessions,
                      "every": 200 / sessions, "graph": {"kind": "bag", "tasks": 1},
                      "profile": {"processing": 0.01}}, *live],
    })


def running(name: str, start: float, **extra: Any) -> dict[str, Any]:
    """A session that stays running (long tasks) unless its life cycle says otherwise."""
    return {"name": name, "partition": "default", "start": start, "close_when_done": False,
            "graph": {"kind": "bag", "tasks": 3}, "profile": {"processing": 1000}, **extra}


def true_statuses(sim: Simulator) -> Counter[str]:
    return Counter(s.status.name for s in sim.true_sessions())


def assert_sessions_equal_the_truth(sim: Simulator, exporter: Exporter) -> None:
    truth = true_statuses(sim)
    for status in STATUSES:
        assert sample(exporter, "armonik_sessions", {"status": status}) == truth[status], status
    active = {s.session_id for s in sim.true_sessions() if s.status.name in ("RUNNING",
                                                                             "PAUSED")}
    assert set(exporter.discovery.followed) == active


async def test_a_pass_costs_the_active_sessions_not_the_history(manual_sim: Any) -> None:
    scenario = with_history(HISTORY, running("live", 250, count=3, every=1))
    async with manual_sim(scenario) as (sim, _):
        await sim.advance_to(sim.start_us + 260 * SECOND)
        assert true_statuses(sim) == {"CLOSED": HISTORY, "RUNNING": 3}
        before = sim.calls["ListSessions"]
        async with exporter_for(sim) as exporter:
            await exporter.discovery.wait_for_polls(1)
            first = sim.calls["ListSessions"] - before  # before the next pass, 50 ms later
            await settle(exporter, 1)
            assert_sessions_equal_the_truth(sim, exporter)
            polls, calls = exporter.discovery.polls, sim.calls["ListSessions"]
            await settle(exporter, 10)
            passes = exporter.discovery.polls - polls
            made = sim.calls["ListSessions"] - calls
            assert passes >= 10
            # The first pass: four counts (one per ended status), the active sessions, the
            # changes since the start point; then the active sessions and the changes. The
            # server counts a call before the client has its answer, and a loaded machine may
            # wake this test after the next pass began, so a pass under way at either reading
            # may have made both of its calls; paging the history would cost 20 more a pass.
            assert 6 <= first <= 8
            assert 2 * passes - 2 <= made <= 2 * passes + 2
            assert_sessions_equal_the_truth(sim, exporter)


async def test_starts_ends_and_deletions_between_passes_show_once_with_their_final_status(
    manual_sim: Any, tmp_path: Path,
) -> None:
    directory = tmp_path / "archive"
    scenario = with_history(
        200,
        running("steady", 205),
        running("closed", 205, lifecycle=[{"action": "close", "at": 20}]),
        running("cancelled", 205, lifecycle=[{"action": "cancel", "at": 20}]),
        running("purged", 205, lifecycle=[{"action": "cancel", "at": 20},
                                          {"action": "purge", "at": 21}]),
        running("deleted", 205, lifecycle=[{"action": "cancel", "at": 20},
                                           {"action": "delete", "at": 21}]),
        {"name": "brief", "partition": "default", "start": 215,
         "graph": {"kind": "bag", "tasks": 2}, "profile": {"processing": 1}},
        running("unseen", 216, lifecycle=[{"action": "cancel", "at": 2},
                                          {"action": "delete", "at": 3}]),
    )
    async with manual_sim(scenario) as (sim, _):
        await sim.advance_to(sim.start_us + 210 * SECOND)
        async with exporter_for(sim, **archive_settings(directory)) as exporter:
            await settle(exporter)
            assert_sessions_equal_the_truth(sim, exporter)
            # Everything below happens between two passes: the exporter never sees the steps.
            await sim.advance(20)
            await settle(exporter)
            assert_sessions_equal_the_truth(sim, exporter)
            await catch_up(exporter)  # what the passes so far published is on disk
            written = rows(directory, "SELECT count(*) AS n FROM sessions_raw")
            await settle(exporter, 10)  # passes with nothing new write nothing
            await catch_up(exporter)
            assert rows(directory, "SELECT count(*) AS n FROM sessions_raw") == written
        truth = {s.session_id: s for s in sim.true_sessions()}
        archived = rows(directory, "SELECT session_id, status, cancelled_at, closed_at, "
                                   "purged_at, deleted_at FROM sessions")
        by_id = {row["session_id"]: row for row in archived}
        assert len(by_id) == len(archived)
        # Every session with a life-cycle date since the start point (T0 - 30 s), once.
        floor = sim.start_us + 180 * SECOND
        changed = {k for k, s in truth.items() if max(
            d or 0 for d in (s.created_at, s.cancelled_at, s.closed_at, s.purged_at,
                             s.deleted_at)) >= floor}
        assert set(by_id) == changed
        live = {k for k, s in truth.items() if (s.created_at or 0) >= sim.start_us + 200 * SECOND}
        assert len(live) == 7 and live < changed
        for session_id, row in by_id.items():
            session = truth[session_id]
            assert row["status"] == session.status.name
            for date in ("cancelled_at", "closed_at", "purged_at", "deleted_at"):
                assert row[date] == getattr(session, date), (session_id, date)
        assert {truth[k].status.name for k in live} == {
            "RUNNING", "CLOSED", "CANCELLED", "PURGED", "DELETED"}


# -- the census, unit by unit --------------------------------------------------------------


def session(name: str, status: str, created: int = 1, **dates: int) -> SessionInfo:
    return SessionInfo(name, status, (), created * SECOND,
                       **{f"{k}_at": v * SECOND for k, v in dates.items()})


def test_the_census_moves_sessions_the_feed_shows_from_their_status_at_the_cutoff() -> None:
    census = SessionCensus()
    census.rebase({"CLOSED": 10, "CANCELLED": 2}, cutoff_us=100 * SECOND)
    census.note(session("old", "PURGED", closed=50, purged=120))  # counted CLOSED at resync
    census.note(session("new", "CLOSED", created=110, closed=130))  # never seen running
    census.note(session("gone", "DELETED", created=2, cancelled=60, deleted=140))
    totals = census.totals([session("a", "RUNNING"), session("b", "PAUSED")])
    assert totals == {"RUNNING": 1, "PAUSED": 1, "CANCELLED": 1, "CLOSED": 10, "PURGED": 1,
                      "DELETED": 1}


def test_the_census_counts_a_session_read_again_once() -> None:
    census = SessionCensus()
    census.rebase({"CLOSED": 0}, cutoff_us=100 * SECOND)
    closed = session("s", "CLOSED", created=90, closed=110)
    for _ in range(3):  # the overlap window reads it again
        census.note(closed)
    census.note(session("s", "PURGED", created=90, closed=110, purged=150))
    census.note(session("before", "CLOSED", created=10, closed=99))  # already in the totals
    assert census.totals([]) == {**dict.fromkeys(STATUSES, 0), "PURGED": 1}
