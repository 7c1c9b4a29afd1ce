"""The metric table is the single truth: docs/metrics.md is generated from it, the exporter
exposes exactly what it declares, and every name follows the Prometheus naming rules."""

from __future__ import annotations

import asyncio
import difflib
import re
import tempfile
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from conftest import START_US
from exporter_harness import FAST, archive_of, settle
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from armonik_observe.collectors.retry import Backoff
from armonik_observe.config import ServeSettings
from armonik_observe.exporters.metrics_table import (
    BY_NAME,
    METRICS,
    MetricSpec,
    exposed_name,
    render_markdown,
)
from armonik_observe.exporters.state_metrics import compat_partition
from armonik_observe.service import Exporter
from armonik_observe.simulator.clock import ManualClock
from armonik_observe.simulator.scenario import scenario_from_dict
from armonik_observe.simulator.server import Simulator

DOCS = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
REGENERATE = "python -m armonik_observe.exporters.metrics_table > docs/metrics.md"

# A scenario stopped mid-way so that every family has data: two partitions (one with a dash, for
# the compat names), ended tasks of several statuses (facts), a closed and a running session
# (per-session series, ETA, deadline, event lag), tasks queued behind a single pod for longer
# than their session's max_duration (stuck tasks), and live event streams (events, drops, last
# event).
EVERY_FAMILY = {
    "name": "every-family",
    "seed": 7,
    "partitions": [{"id": "cpu", "pods": 2}, {"id": "gpu-a100", "pods": 1}],
    "sessions": [
        {"name": "batch", "partition": "cpu", "graph": {"kind": "bag", "tasks": 20},
         "application": {"name": "pricing"},
         "profile": {"processing": {"kind": "uniform", "mean": 1.0, "spread": 0.5},
                     "error_rate": 0.2}},
        # 8 tasks of 8 s on one pod: at t=35 s, 3 are still SUBMITTED since t=5 s (> 10 s).
        {"name": "queue", "partition": "gpu-a100", "graph": {"kind": "bag", "tasks": 8},
         "application": {"name": "risk"}, "max_duration": 10, "close_when_done": False,
         "deadline": 60,
         "profile": {"processing": 8}},
    ],
}
STEP_S, STEPS = 5.0, 7
PARTITIONS = ("cpu", "gpu-a100")

# Declared metrics that may legitimately have no sample in the scenario above, with the reason.
# The scenario is built to feed every family, so this stays empty; add an entry only with a why.
NOT_IN_SCENARIO: dict[str, str] = {}

# The official exporter's four compat statuses (queued = submitted + dispatched + processing).
COMPAT_STATUSES = {"queued", "submitted", "dispatched", "processing"}
FORBIDDEN_LABELS = {"task", "task_id", "pod", "pod_hostname"}
SESSION_LABEL_FAMILIES = re.compile(r"armonik_session_\w+|armonik_observe_event_lag_seconds")
# Name tokens of non-base units: Prometheus wants seconds, bytes, ratios (not percent), ...
NON_BASE_UNITS = {
    "ms", "msec", "millis", "milliseconds", "us", "usec", "micros", "microseconds", "ns",
    "nanoseconds", "minutes", "hours", "days", "kb", "mb", "gb", "kilobytes", "megabytes",
    "gigabytes", "percent", "celsius_milli",
}


@asynccontextmanager
async def exporter_on_sim_clock(sim: Simulator, archive: Path) -> AsyncIterator[Exporter]:
    """An exporter whose own clock is the simulator's, so stuck-task ages are in sim time; with
    every output on (the archive, traces to a file), so every family has samples."""
    settings = ServeSettings.build(endpoint=sim.endpoint, listen="127.0.0.1:0", archive=archive,
                                   traces_file=archive.parent / "spans.jsonl", **FAST)
    exporter = Exporter(settings, backoff=Backoff(initial=0.01, maximum=0.1),
                        clock=lambda: sim.clock.now_us() / 1_000_000)
    async with exporter:
        yield exporter


async def scrape(url: str) -> str:
    """GET a text exposition over HTTP."""
    async with aiohttp.ClientSession() as client, client.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.text()


async def scrape_every_family() -> str:
    """Run EVERY_FAMILY to t=35 s with an exporter following it; scrape /metrics over HTTP."""
    sim = Simulator(scenario_from_dict(EVERY_FAMILY), clock=ManualClock(START_US))
    with tempfile.TemporaryDirectory() as directory:
        archive = Path(directory) / "archive"
        async with sim, exporter_on_sim_clock(sim, archive) as exporter:
            await settle(exporter, 1)  # the first facts poll sees no end: watermark at 0
            for _ in range(STEPS):
                await sim.advance(STEP_S)
                await settle(exporter, 1)  # follow new sessions; streams catch up
            await settle(exporter)
            await archive_of(exporter).flush()
            # The archive's sizes, for its self-metrics.
            await asyncio.to_thread(archive_of(exporter).upkeep.once)
            return await scrape(exporter.http.url + "/metrics")


@pytest.fixture(scope="module")
def exposition() -> str:
    """The exporter's /metrics text after the EVERY_FAMILY scenario, shared by the module."""
    return asyncio.run(scrape_every_family())


@pytest.fixture(scope="module")
def families(exposition: str) -> dict[str, Metric]:
    """The exposition parsed into families, by (parser) family name."""
    parsed = list(text_string_to_metric_families(exposition))
    names = [f.name for f in parsed]
    assert len(names) == len(set(names)), "a family is exposed twice"
    return {f.name: f for f in parsed}


# -- mapping exposed families to the table ---------------------------------------------------


def _pattern(name: str) -> re.Pattern[str]:
    regex = re.escape(name)
    regex = regex.replace("<status>", r"(?P<status>[a-z]+)")
    regex = regex.replace("<partition>", r"(?P<partition>[a-zA-Z0-9_]+)")
    return re.compile(regex)


PATTERNS = {metric.name: _pattern(metric.name) for metric in METRICS if "<" in metric.name}
EXACT = {metric.name: metric for metric in METRICS if "<" not in metric.name}


def table_name(family: Metric) -> str:
    """The name the table would use for a parsed family.

    The parser strips `_total` from counters (the table declares counters without it). Info
    metrics are declared with their `_info` suffix: the text format exposes them as a gauge of
    that name, OpenMetrics as an `info` family without it.
    """
    if family.type == "info":
        return family.name + "_info"
    return family.name


def table_entry(family: Metric) -> tuple[MetricSpec | None, re.Match[str] | None]:
    """The table entry that declares a family (exact names first, then the two patterns)."""
    name = table_name(family)
    if name in EXACT:
        return EXACT[name], None
    for pattern_name, pattern in PATTERNS.items():
        match = pattern.fullmatch(name)
        if match:
            return BY_NAME[pattern_name], match
    return None, None


def created_companion(family: Metric) -> bool:
    """A `<counter or histogram>_created` gauge prometheus_client would add in the text format."""
    base = family.name.removesuffix("_created")
    return (family.name.endswith("_created") and base in EXACT
            and EXACT[base].kind in ("counter", "histogram"))


def label_names(family: Metric) -> set[str]:
    return {label for sample in family.samples for label in sample.labels} - {"le"}


def type_lines(exposition: str) -> dict[str, str]:
    """`# TYPE name type` lines of the raw text: the names exactly as scraped."""
    found = {}
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            found[name] = kind
    return found


def _offenders(names: Iterable[str], rule: str) -> str:
    return f"{rule}: {sorted(names)}"


# -- docs ------------------------------------------------------------------------------------


def test_docs_are_generated_from_the_table() -> None:
    want = render_markdown()
    got = DOCS.read_text(encoding="utf-8")
    if got != want:
        diff = "\n".join(difflib.unified_diff(
            got.splitlines(), want.splitlines(), "docs/metrics.md", "render_markdown()",
            lineterm=""))
        pytest.fail(f"docs/metrics.md is out of date; regenerate it with\n    {REGENERATE}\n"
                    f"{diff}", pytrace=False)


def test_the_table_declares_each_name_once() -> None:
    names = [metric.name for metric in METRICS]
    assert len(names) == len(set(names))
    assert {metric.kind for metric in METRICS} <= {"gauge", "counter", "histogram", "info"}
    for metric in METRICS:
        if metric.kind == "info":
            assert metric.name.endswith("_info"), metric.name
        if metric.kind == "counter":
            assert not metric.name.endswith("_total"), f"{metric.name}: the table omits _total"


# -- the exposition against the table ----------------------------------------------------------


def test_every_exposed_family_is_declared(families: dict[str, Metric]) -> None:
    undeclared = [name for name, family in families.items()
                  if table_entry(family)[0] is None]
    assert not undeclared, _offenders(undeclared, "exposed but not in metrics_table.METRICS")


def test_no_undeclared_created_families(families: dict[str, Metric]) -> None:
    created = [name for name, family in families.items() if created_companion(family)]
    assert not created, _offenders(created, "undeclared _created families")


def test_every_declared_metric_is_exposed_with_data(families: dict[str, Metric]) -> None:
    with_data = {table_name(f) for f in families.values() if f.samples}
    missing = [metric.name for metric in EXACT.values()
               if metric.name not in with_data and metric.name not in NOT_IN_SCENARIO]
    assert not missing, _offenders(missing, "declared but without a sample in the exposition")
    for pattern_name, pattern in PATTERNS.items():
        assert any(pattern.fullmatch(table_name(f)) for f in families.values()), pattern_name


def test_types_labels_and_help_follow_the_table(families: dict[str, Metric]) -> None:
    problems = []
    for name, family in families.items():
        metric, match = table_entry(family)
        if metric is None:
            continue
        want_type = "gauge" if metric.kind == "info" else metric.kind  # info: gauge in text
        if family.type != want_type:
            problems.append(f"{name}: type {family.type}, table says {metric.kind}")
        if label_names(family) != set(metric.labels):
            problems.append(f"{name}: labels {sorted(label_names(family))}, "
                            f"table says {list(metric.labels)}")
        if match is None and family.documentation != metric.help:
            problems.append(f"{name}: HELP differs from the table")
    assert not problems, "\n".join(problems)


def test_compat_families_are_the_official_exporter_names(families: dict[str, Metric]) -> None:
    found: dict[str, set[str]] = {}
    for family in families.values():
        metric, match = table_entry(family)
        if metric is None or match is None:
            continue
        scope = match.groupdict().get("partition", "")
        found.setdefault(scope, set()).add(match["status"])
        assert len(family.samples) == 1, family.name  # one unlabelled value
    want = {"": COMPAT_STATUSES} | {compat_partition(p): COMPAT_STATUSES for p in PARTITIONS}
    assert found == want
    assert "gpu_a100" in found  # dashes became underscores


# -- naming rules ------------------------------------------------------------------------------


def test_counters_end_in_total_as_scraped(exposition: str) -> None:
    kinds = type_lines(exposition)
    counters = {name for name, kind in kinds.items() if kind == "counter"}
    assert counters, "no counter in the exposition"
    assert not [n for n in counters if not n.endswith("_total")], kinds
    others = [n for n, kind in kinds.items() if kind != "counter" and n.endswith("_total")]
    assert not others, _offenders(others, "non-counters named *_total")
    declared = {exposed_name(m) for m in METRICS if m.kind == "counter"}
    assert declared <= counters


def test_units_are_base_units(exposition: str) -> None:
    names = set(type_lines(exposition)) | {metric.name for metric in METRICS}
    bad = [name for name in names if NON_BASE_UNITS & set(name.split("_"))]
    assert not bad, _offenders(bad, "non-base unit in the name (use _seconds, _bytes, ...)")
    histograms = [m.name for m in METRICS if m.kind == "histogram"]
    assert all(name.endswith("_seconds") for name in histograms), histograms  # all durations
    timestamps = [m.name for m in METRICS if "timestamp" in m.name]
    assert all(name.endswith("_timestamp_seconds") for name in timestamps), timestamps


def test_no_per_task_or_per_pod_labels(families: dict[str, Metric]) -> None:
    exposed = {name: label_names(f) & FORBIDDEN_LABELS for name, f in families.items()}
    assert not {n: bad for n, bad in exposed.items() if bad}
    declared = {m.name: set(m.labels) & FORBIDDEN_LABELS for m in METRICS}
    assert not {n: bad for n, bad in declared.items() if bad}


def test_session_label_only_on_per_session_families(families: dict[str, Metric]) -> None:
    exposed = {name for name, f in families.items() if "session" in label_names(f)}
    assert exposed, "the scenario follows a running session: some family carries `session`"
    declared = {m.name for m in METRICS if "session" in m.labels}
    for name in exposed | declared:
        assert SESSION_LABEL_FAMILIES.fullmatch(name), f"{name} carries a session label"
