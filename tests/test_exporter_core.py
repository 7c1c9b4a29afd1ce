"""The exporter's core under faults: deadlines, supervised collectors, start and stop (issue 14)."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from exporter_harness import FAST, exporter_for, sample, settle, settle_until

from armonik_observe.archive.reader import Archive
from armonik_observe.collectors import convert
from armonik_observe.config import ServeSettings
from armonik_observe.exporters.exposition import Family
from armonik_observe.pipeline import Batch, Needs
from armonik_observe.service import Exporter
from armonik_observe.simulator.faults import FaultPlan, RpcFaults

# A short deadline for the health call, so that its staleness shows within a second; the other
# calls keep a deadline a loaded machine's pauses cannot reach.
SHORT = {"rpc_timeout": ("10", "CheckHealth=0.3")}


async def test_a_hung_call_fails_at_its_deadline_and_marks_its_poller_stale(
    manual_sim: Any,
) -> None:
    plan = FaultPlan()
    async with manual_sim(faults=plan) as (sim, _), exporter_for(sim, **SHORT) as exporter:
        # Ready, and the latest health call answered (it may have outlived its 0.3 s just now).
        await settle_until(exporter, lambda: exporter.readiness().ready
                           and sample(exporter, "armonik_up") == 1)
        plan.rpcs["CheckHealth"] = RpcFaults(latency_s=30.0)  # the call hangs
        await settle_until(exporter, lambda: not exporter.readiness().ready)
        [reason] = [r for r in exporter.readiness().reasons if r.startswith("health:")]
        assert reason.startswith("health: last success")
        assert "stale after" in reason and "DEADLINE_EXCEEDED" in reason
        assert sample(exporter, "armonik_up") == 0
        hung = {"rpc": "CheckHealth", "code": "DEADLINE_EXCEEDED"}
        assert sample(exporter, "armonik_observe_rpc_duration_seconds_count", hung) >= 1
        plan.rpcs.clear()
        # Ready, and the latest health call answered (it may have outlived its 0.3 s just now).
        await settle_until(exporter, lambda: exporter.readiness().ready
                           and sample(exporter, "armonik_up") == 1)


async def test_each_rpc_kind_has_its_own_deadline(manual_sim: Any) -> None:
    async with manual_sim() as (sim, _):
        options = {"rpc_timeout": ("7", "CheckHealth=0.5")}
        async with exporter_for(sim, **options) as exporter:
            assert exporter.connection.timeout("CheckHealth") == 0.5
            assert exporter.connection.timeout("ListTasks") == 7.0
            assert exporter.health.stale_after() == 2 * exporter.health.interval + 7.0


async def test_a_crashing_poll_is_logged_once_counted_and_retried(
    manual_sim: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    crashes = {"left": 5}
    real = convert.health_samples

    def flaky(*args: Any) -> Any:
        if crashes["left"]:
            crashes["left"] -= 1
            raise ValueError("malformed health reply")
        return real(*args)

    monkeypatch.setattr(convert, "health_samples", flaky)
    async with manual_sim() as (sim, _), exporter_for(sim, **SHORT) as exporter:
        with caplog.at_level(logging.ERROR):
            await settle_until(exporter, lambda: crashes["left"] == 0 and exporter.health.ok)
        errors = {"collector": "health"}
        assert sample(exporter, "armonik_observe_collector_errors_total", errors) == 5
        assert sample(exporter, "armonik_observe_collector_errors_total",
                      {"collector": "facts"}) == 0
        logged = [r for r in caplog.records if "failed unexpectedly" in r.getMessage()]
        assert len(logged) == 1 and logged[0].exc_info is not None  # one traceback per run
        assert exporter.health.polls > 5  # the poller lived on


async def test_a_crashing_stream_is_counted_and_reconnected(
    manual_sim: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from test_exporter_faults import WORK

    crashes = {"left": 2}
    real = convert.task_status

    def flaky(status: int) -> str:
        if crashes["left"]:
            crashes["left"] -= 1
            raise RuntimeError("bug in the event path")
        return real(status)

    async with manual_sim(WORK) as (sim, _), exporter_for(sim) as exporter:
        await sim.advance(1)
        await settle_until(exporter, lambda: exporter.streams.stream_states()["connected"] >= 1)
        monkeypatch.setattr(convert, "task_status", flaky)
        await sim.advance(1)
        await settle_until(exporter, lambda: crashes["left"] == 0)
        await settle_until(exporter, lambda: exporter.streams.mishaps.count == 2)
        monkeypatch.undo()
        await settle_until(exporter, lambda: set(exporter.streams.states.values())
                           == {"connected"})
        assert sample(exporter, "armonik_observe_collector_errors_total",
                      {"collector": "events"}) == 2


class Recording:
    """A sink that records its life cycle, and fails to start when told to."""

    needs = Needs()

    def __init__(self, name: str, journal: list[str], fail_start: bool = False) -> None:
        self.name, self._journal, self._fail = name, journal, fail_start

    async def start(self) -> None:
        """Start, or fail to."""
        if self._fail:
            raise OSError(f"{self.name} cannot start")
        self._journal.append(f"start {self.name}")

    def consume(self, batch: Batch) -> None:
        """Take nothing in."""

    async def flush(self) -> None:
        """Nothing buffered."""

    async def stop(self) -> None:
        """Record the stop."""
        self._journal.append(f"stop {self.name}")

    def self_metrics(self) -> Iterable[Family]:
        """None."""
        return ()


def settings_for(endpoint: str, **options: Any) -> ServeSettings:
    return ServeSettings.build(endpoint=endpoint, listen="127.0.0.1:0", **options)


async def test_a_start_that_fails_halfway_stops_what_started_in_reverse(manual_sim: Any) -> None:
    journal: list[str] = []
    sinks = [Recording("a", journal), Recording("b", journal), Recording("c", journal, True)]
    async with manual_sim() as (sim, _):
        exporter = Exporter(settings_for(sim.endpoint), sinks=sinks)  # type: ignore[arg-type]
        with pytest.raises(OSError, match="c cannot start"):
            await exporter.start()
        assert journal == ["start a", "start b", "stop b", "stop a"]
        await exporter.stop()  # idempotent: nothing stops twice
        assert journal == ["start a", "start b", "stop b", "stop a"]


async def test_a_taken_port_stops_the_sinks_that_started(manual_sim: Any) -> None:
    journal: list[str] = []
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        async with manual_sim() as (sim, _):
            settings = ServeSettings.build(endpoint=sim.endpoint, listen=listen)
            exporter = Exporter(settings, sinks=[Recording("a", journal)])  # type: ignore[list-item]
            with pytest.raises(OSError):
                await exporter.start()
            assert journal == ["start a", "stop a"]
            assert not any(t.get_name().startswith("poll-") for t in asyncio.all_tasks())


async def test_the_archive_watermark_is_read_off_the_event_loop(
    manual_sim: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[int] = []
    real = Archive.watermark_us

    def recorded(self: Archive) -> int | None:
        threads.append(threading.get_ident())
        return real(self)

    monkeypatch.setattr(Archive, "watermark_us", recorded)
    async with manual_sim() as (sim, _):
        exporter = Exporter(settings_for(sim.endpoint, archive=tmp_path / "archive", **FAST))
        assert threads == []  # constructing reads nothing
        async with exporter:
            await settle(exporter, 1)
    assert threads and threading.get_ident() not in threads


async def test_every_bounded_cache_is_exposed_with_its_size(
    manual_sim: Any, tmp_path: Path,
) -> None:
    from test_exporter_faults import WORK

    async with manual_sim(WORK) as (sim, _), exporter_for(
            sim, archive=tmp_path / "archive") as exporter:
        for _ in range(4):
            await sim.advance(1)
            await settle(exporter, 1)
        caches = {labels["cache"]: value for labels, value in (
            (s.labels, s.value) for f in exporter.registry.collect()
            if f.name == "armonik_observe_cache_entries" for s in f.samples)}
        assert set(caches) == {"render_heads", "sessions_known", "session_progress",
                               "archive_buffered_rows",
                               "recent_ends", "facts_seen", "lag_pending", "sessions",
                               "results"}
        assert caches["facts_seen"] == exporter.facts.seen_ids() > 0
        assert caches["sessions_known"] == len(exporter.sink.state.sessions) > 0
        assert caches["recent_ends"] > 0
