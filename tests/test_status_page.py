"""The status page at /, as an operator sees it: headless Chromium loads it from a real exporter
watching a simulated control plane, and what it renders is checked against the simulator's
truth; screenshots at 1280x900 and 390x844."""

from __future__ import annotations

import asyncio
import struct
import subprocess
import tempfile
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from conftest import START_US
from exporter_harness import exporter_for, settle, settle_until

from armonik_observe.exporters.status import (
    ArchiveState,
    PartitionRow,
    PollerRow,
    Readiness,
    ServiceHealth,
    SessionRow,
    SpanDestinationState,
    StatusSnapshot,
    TracesState,
)
from armonik_observe.exporters.status_page import DOCS_URL, render_status_page
from armonik_observe.exporters.throughput import RecentEnds
from armonik_observe.fact_columns import TaskFacts
from armonik_observe.model import TERMINAL_TASK_STATUSES, SessionStatus
from armonik_observe.service import Exporter
from armonik_observe.simulator.clock import MICROS
from armonik_observe.simulator.scenario import scenario_from_dict
from armonik_observe.simulator.server import Simulator

SIZES = ((1280, 900), (390, 844))
# Long tasks on two partitions, so sessions are half done when the page is read; one session
# with a deadline it cannot meet; failures, retries and a paused session.
SCENARIO = scenario_from_dict({
    "name": "status-page", "seed": 21,
    "partitions": [{"id": "cpu", "pods": 3, "slots": 2, "pod_max": 10},
                   {"id": "gpu-a100", "pods": 2}],
    "sessions": [
        {"name": "pricing", "partition": "cpu", "count": 2, "every": 3,
         "graph": {"kind": "bag", "tasks": 200}, "application": {"name": "pricing"},
         "profile": {"processing": {"kind": "exponential", "mean": 1.0}, "error_rate": 0.1},
         "max_retries": 1, "deadline": 600},
        {"name": "risk", "partition": "gpu-a100", "start": 1, "deadline": 5,
         "graph": {"kind": "fanout", "tasks": 40}, "application": {"name": "risk"},
         "profile": {"processing": 2.0}},
        {"name": "held", "partition": "cpu", "start": 2, "graph": {"kind": "bag", "tasks": 30},
         "lifecycle": [{"action": "pause", "at": 1}]},
    ],
})


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with a fresh profile and no network but loopback."""
    with tempfile.TemporaryDirectory() as profile:
        command = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                   "--disable-background-networking", "--disable-component-update",
                   "--disable-sync", f"--user-data-dir={profile}",
                   "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


class Page(HTMLParser):
    """The rendered DOM as text: each section's table rows (cell texts), the links, the meta
    tags and the whole text."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.rows: dict[str, list[list[str]]] = {}
        self.links: list[str] = []
        self.meta: dict[str, str] = {}
        self.text: list[str] = []
        self._section = ""
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(dom)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "section":
            self._section = values.get("id", "")
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "a":
            self.links.append(values.get("href", ""))
        elif tag == "meta" and "http-equiv" in values:
            self.meta[values["http-equiv"]] = values.get("content", "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.setdefault(self._section, []).append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        self.text.append(data)

    def table(self, section: str) -> list[dict[str, str]]:
        """A section's table as dicts by header (the first table of the section)."""
        header, *body = self.rows[section]
        return [dict(zip(header, row, strict=False)) for row in body if row != header]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's header."""
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


async def run_until_half_done(sim: Simulator, exporter: Exporter) -> None:
    """Play the scenario a while, then let the exporter catch up with the frozen plane."""
    await settle(exporter, 1)
    for _ in range(20):
        await sim.advance(1.0)
        await settle(exporter, 1)  # count samples along the way: the sessions' ETA
    tasks = sim.plane.tasks

    def caught_up() -> bool:
        truth = Counter((t.partition_id, t.status.name) for t in tasks.values())
        counts = exporter.sink.state.partition_counts
        return all(counts.get(p, {}).get(s, 0) == n for (p, s), n in truth.items())

    await settle_until(exporter, caught_up)
    await settle(exporter)


async def test_the_page_shows_the_truth_in_a_real_browser(manual_sim: Any, tmp_path: Path) -> None:
    async with (
        manual_sim(SCENARIO) as (sim, _),
        exporter_for(sim, archive=tmp_path / "archive", traces_file=tmp_path / "spans.jsonl",
                     archive_flush_interval=0.2) as exporter,
    ):
        await run_until_half_done(sim, exporter)
        url = exporter.http.url + "/"
        dom = (await asyncio.to_thread(chromium, "--dump-dom", url)).stdout
        for width, height in SIZES:
            await asyncio.to_thread(chromium, f"--screenshot={tmp_path}/status-{width}.png",
                                    f"--window-size={width},{height}", url + "?refresh=0")
        truth = Counter((t.partition_id, t.status.name) for t in sim.plane.tasks.values())
        active = {s.session_id: s.status.name for s in sim.true_sessions()
                  if s.status in (SessionStatus.RUNNING, SessionStatus.PAUSED)}
        by_session = {session: [t for t in sim.true_tasks() if t.session_id == session]
                      for session in active}
        archived = exporter.output("archive")
        ends = Counter(t.partition_id for t in sim.true_tasks() if t.ended_at is not None)
        assert max(t.ended_at or 0 for t in sim.true_tasks()) - START_US < 60 * MICROS
    page = Page(dom)
    text = " ".join(" ".join(page.text).split())
    assert "UP · READY" in text
    assert page.meta["refresh"] == "5"
    assert {"metrics", "health", f"{DOCS_URL}runbook.md"} <= set(page.links)
    assert {row["service"]: row["state"] for row in page.table("health")} == {
        "database": "HEALTHY", "object": "HEALTHY", "queue": "HEALTHY"}
    # Tasks by status per partition: every count the plane holds, and zeros elsewhere.
    tasks = {row["partition"]: row for row in page.table("tasks")}
    assert set(tasks) == {"cpu", "gpu-a100"}
    for (partition, status), count in truth.items():
        assert tasks[partition][status.lower()] == f"{count:,}", (partition, status)
    assert tasks["cpu"]["pod max"] == "10"
    # Followed sessions: each active one, its progress exactly the plane's.
    sessions = {row["session"]: row for row in page.table("sessions")}
    assert len(sessions) == len(active) == 4
    for session_id, mine in by_session.items():
        row = sessions[session_id[:8]]
        ended = sum(t.status in TERMINAL_TASK_STATUSES for t in mine)
        assert row["tasks"] == f"{ended:,} / {len(mine):,}"
        assert row["status"] == active[session_id]
    assert any(row["ETA"].startswith("in ") for row in sessions.values())
    late = [row for row in sessions.values() if row["deadline"].startswith("late")]
    assert [row["partition"] for row in late] == ["gpu-a100"]  # its deadline has passed
    assert "PAUSED" in set(active.values()) and "paused" in tasks["cpu"]
    # Throughput, the exporter, the archive and the traces.
    throughput = {row["partition"]: row for row in page.table("throughput")}
    assert set(throughput) == {"cpu", "gpu-a100"}
    for partition, count in ends.items():  # every end so far is within the last minute
        assert throughput[partition]["ended"] == f"{count / 60:,.1f}/s"
        assert throughput[partition]["since start"] == f"{count:,}"
    assert {row["poller"]: row["state"] for row in page.table("exporter")} == {
        "sessions": "HEALTHY", "health": "HEALTHY", "counts": "HEALTHY", "facts": "HEALTHY",
        "results": "HEALTHY"}
    assert archived is not None and "written by this run" in text
    assert "Traces" in text and "spans.jsonl" in text
    for width, height in SIZES:
        shot = tmp_path / f"status-{width}.png"
        assert png_size(shot) == (width, height)
        assert shot.stat().st_size > 20_000  # a drawn page, not a blank one


async def test_the_page_says_when_the_control_plane_is_down(manual_sim: Any) -> None:
    async with manual_sim(SCENARIO) as (sim, _), exporter_for(sim) as exporter:
        await settle(exporter)
        async with sim.down():
            await settle_until(exporter, lambda: not exporter.up())
            async with (aiohttp.ClientSession() as client,
                        client.get(exporter.http.url + "/?refresh=0") as response):
                page = await response.text()
    assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
    assert "DOWN" in page and 'http-equiv="refresh"' not in page
    assert "no successful poll yet" in page or "last success" in page


NOW = 1_700_000_000.0


def test_a_rendered_snapshot_is_escaped_human_and_self_contained() -> None:
    hostile = "<script>alert(1)</script>"
    snapshot = StatusSnapshot(
        at=NOW, endpoint=f"http://{hostile}:5001", up=True,
        readiness=Readiness(False, (f"facts: last failure {hostile}",)),
        versions=("0.40.0", "3.29.0"),
        health=(ServiceHealth("queue", "DEGRADED", "slow", NOW - 125),),
        partitions=(PartitionRow("cpu", {"PROCESSING": 3, "COMPLETED": 1200}, 8, 12.5, 1200, 2),),
        sessions=(SessionRow(hostile, "RUNNING", "cpu", "pricing", NOW - 3700, 30, 120, 200.0,
                             NOW + 60),),
        followed=3, session_totals={"RUNNING": 3, "CLOSED": 10},
        pollers=(PollerRow("facts", False, 95.0, hostile, 2),),
        archive=ArchiveState("/data/archive", 10_000, 2_345_678, 9_000, NOW - 4, 0, 0),
        traces=TracesState((SpanDestinationState("http://tempo:4317 (grpc)", 500, 0, 7),
                            SpanDestinationState("/data/spans.jsonl", 507, 3, 0)), 4),
    )
    page = render_status_page(snapshot, "1.2.3", refresh_s=0)
    assert "<script" not in page and "&lt;script&gt;" in page
    assert "src=" not in page and "<link" not in page  # nothing to fetch
    assert "UP · NOT READY" in page and "facts: last failure" in page
    assert 'http-equiv="refresh"' not in page
    assert "2 min 05 s ago" in page  # the health check
    assert "1 h 01 min ago" in page  # the session opened
    assert 'class="pill bad">late</span> due in 1 min' in page  # ETA 200 s, deadline in 60 s
    assert "30 / 120" in page and "2.3 MB" in page and "12.5/s" in page
    assert "2 more followed" in page
    # Each destination with what it took and lost: the file's count is not the backend's.
    assert "<dt>to http://tempo:4317 (grpc)</dt><dd>500 exported; dropped: 7 export failed" in page
    assert "<dt>to /data/spans.jsonl</dt><dd>507 exported; dropped: 3 queue full" in page
    assert "<dt>over the session limit</dt><dd>4</dd>" in page
    assert "2023-11-14 22:13:20 UTC" in page
    assert 'http-equiv="refresh" content="7"' in render_status_page(snapshot, "1", 7)


def test_recent_ends_count_the_last_minute_and_go_to_zero_when_idle() -> None:
    def facts(partition: str, seconds: list[int]) -> TaskFacts:
        ends = np.array([s * MICROS + 500 for s in seconds], np.int64)
        return TaskFacts({"ended_at": ends, "partition_id": [partition] * len(seconds)},
                         len(seconds))

    recent = RecentEnds(window_s=60)
    recent.add(facts("a", list(range(100, 160))))
    recent.add(facts("b", [130, 131]))
    recent.add(facts("a", [10]))  # late and out of the window: not kept
    # Facts lag behind: within `settle_s` of the newest end, the window ends there.
    assert recent.per_second(161.0, settle_s=2) == {"a": 1.0, "b": 2 / 60}
    assert recent.per_second(190.0, settle_s=2) == {"a": 29 / 60, "b": 1 / 60}  # (130, 190]
    assert recent.per_second(300.0, settle_s=2) == {"a": 0.0, "b": 0.0}  # idle since
