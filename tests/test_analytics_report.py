"""The HTML report opens offline in headless Chromium (no name resolves, nothing loads from
anywhere but the file) and draws every chart of every section; the Gantt chart downsamples past
its limit to busy periods that still account for every task."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import polars as pl
from analytics_truth import SCENARIO, archive_truth
from test_cli_serve import run_cli

from armonik_observe.analytics.analysis import Options, SessionAnalysis
from armonik_observe.analytics.frames import Selection, from_archive
from armonik_observe.analytics.report import render

SECTIONS = ("Where the time went, phase by phase", "Durations per partition",
            "Throughput, backlog and concurrency", "Pods: who ran what, and when",
            "Stragglers and skew", "Retries and errors", "Critical path")
FIGURES_PER_SESSION = 5  # phases, histograms, curves, Gantt (when a task ran), critical path


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with no network at all: every host name fails to resolve."""
    command = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def rendered_dom(page: Path, profile: Path) -> str:
    """The page's DOM once its scripts ran."""
    return chromium("--virtual-time-budget=20000", "--dump-dom", page.as_uri(),
                    profile=profile).stdout


def drawn_figures(dom: str) -> dict[str, bool]:
    """Each figure div by id, and whether Plotly drew an SVG into it."""
    parts = re.split(r'(?=<div id="figure-\d+")', dom)
    return {re.match(r'<div id="(figure-\d+)"', part).group(1):  # type: ignore[union-attr]
            'class="main-svg"' in part for part in parts[1:]}


async def test_the_report_opens_offline_and_draws_every_section(
    manual_sim: Any, tmp_path: Path
) -> None:
    async with manual_sim(SCENARIO) as (sim, _):
        await sim.run_until_idle()
        await archive_truth(sim, tmp_path / "archive")
        sessions = sim.workload.session_ids
        # A session cancelled before any of its tasks started has no Gantt chart.
        ran = {t.session_id for t in sim.true_tasks() if t.started_at is not None}
    page = tmp_path / "report.html"
    result = run_cli("analyze", "--archive", str(tmp_path / "archive"), "--html", str(page))
    assert result.returncode == 0, result.stderr
    assert f"wrote the report to {page}" in result.stderr
    source = page.read_text()
    # Nothing to fetch: no external script, style sheet, image or frame.
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", source)
    dom = rendered_dom(page, tmp_path / "profile")
    figures = drawn_figures(dom)
    assert len(figures) == FIGURES_PER_SESSION * len(sessions) - len(set(sessions) - ran) > 0
    assert all(figures.values()), [name for name, drawn in figures.items() if not drawn]
    for heading in SECTIONS:
        assert dom.count(heading) == len(sessions), heading
    assert all(f'id="s{i}"' in dom for i in range(len(sessions)))  # the index links to each
    assert "critical path" in dom and "Sessions" in dom
    screenshot = tmp_path / "report.png"
    chromium("--screenshot=" + str(screenshot), "--window-size=1280,2400", page.as_uri(),
             profile=tmp_path / "profile")
    assert screenshot.stat().st_size > 50_000  # a drawn page, not a blank one


async def test_the_gantt_chart_downsamples_to_busy_periods(
    manual_sim: Any, tmp_path: Path
) -> None:
    async with manual_sim(SCENARIO) as (sim, _):
        await sim.run_until_idle()
        await archive_truth(sim, tmp_path / "archive")
    frames = from_archive(tmp_path / "archive", Selection())
    biggest = max(frames.sessions, key=lambda s: frames.session(s).height)
    tasks = frames.session(biggest)
    limit = 12
    analysis = SessionAnalysis(biggest, tasks, frames.results, Options(max_gantt_bars=limit))
    gantt = analysis.gantt
    ran = tasks.filter(pl.col("started_at").is_not_null() & (pl.col("pod_hostname") != ""))
    assert gantt.tasks == ran.height > limit
    assert gantt.downsampled and gantt.bars.height <= limit
    assert gantt.bars["tasks"].sum() == ran.height  # every task is in one busy period
    for pod, bars in gantt.bars.group_by("pod_hostname"):
        mine = ran.filter(pl.col("pod_hostname") == pod[0])
        assert bars["start"].min() == mine["started_at"].min()
        assert bars["end"].max() == mine["ended_at"].max()
    html = render([analysis], "a test")
    assert "downsampled" in html and f"{ran.height:,} tasks drawn as" in html
