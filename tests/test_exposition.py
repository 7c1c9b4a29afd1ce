"""What /metrics serves over HTTP: a golden exposition, format negotiation, and promtool's lint.

The golden file holds the exposition of a small deterministic scenario run to its end, with the
families that depend on wall time or on when events arrive left out (they are checked here with
loose invariants instead). Regenerate it after an intended change with

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_exposition.py -k golden
"""

from __future__ import annotations

import difflib
import gzip
import os
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from exporter_harness import exporter_for, settle
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from promserver import promtool_check_metrics, require_prometheus
from test_metrics_docs import EXACT, scrape_every_family, table_name

from armonik_observe.service import Exporter
from armonik_observe.simulator.scenario import scenario_from_dict

GOLDEN = Path(__file__).resolve().parent / "golden" / "exposition.txt"
GOLDEN_HEADER = "# golden: "
TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0"

SCENARIO = {
    "name": "golden",
    "seed": 5,
    "partitions": [{"id": "cpu", "pods": 2}, {"id": "gpu-a100", "pods": 1, "slots": 2}],
    "sessions": [
        {"name": "pricing", "partition": "cpu", "graph": {"kind": "bag", "tasks": 12},
         "application": {"name": "pricing"}, "max_retries": 1,
         "profile": {"processing": {"kind": "lognormal", "mean": 0.5, "spread": 0.6},
                     "error_rate": 0.2}},
        # Two sessions stay open once done: they are still followed, so the per-session
        # families (and their session ids) are part of the golden exposition.
        {"name": "risk", "partition": "gpu-a100", "start": 1,
         "graph": {"kind": "fanout", "tasks": 4}, "application": {"name": "risk"},
         "close_when_done": False, "profile": {"processing": {"kind": "exponential", "mean": 2}}},
        {"name": "chain", "partition": "cpu", "start": 2, "graph": {"kind": "chain", "tasks": 3},
         "close_when_done": False, "profile": {"processing": 0.3}},
    ],
}

# Families whose values depend on wall time or build: left out of the golden comparison.
VOLATILE = {
    "armonik_observe_rpc_duration_seconds",
    "armonik_observe_last_event_timestamp_seconds",
    "armonik_observe_build_info",
    "armonik_observe_asyncio_tasks",  # the HTTP server's own tasks come and go
}
# Families fed by the event streams: how many events arrive, and when, depends on timing.
EVENT_DERIVED = {
    "armonik_task_status_transitions",
    "armonik_observe_events_received",
    "armonik_observe_stream_reconnects",
    "armonik_observe_dropped",
    "armonik_observe_event_streams",
    "armonik_observe_event_lag_seconds",
    "armonik_observe_tasks_tracked",
    "armonik_tasks_stuck",
    "armonik_observe_cache_entries",  # recent ends and render heads depend on arrival order
}
SUFFIXES = ("", "_total", "_created", "_bucket", "_count", "_sum")
LEFT_OUT = {family + suffix for family in VOLATILE | EVENT_DERIVED for suffix in SUFFIXES}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SAMPLE = re.compile(r"(?P<series>[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) (?P<value>\S+)")


async def get(url: str, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """GET with the given headers; the raw body (not decompressed) and the response headers."""
    async with aiohttp.ClientSession(auto_decompress=False) as client, \
            client.get(url, headers=headers) as response:
        assert response.status == 200
        return await response.read(), dict(response.headers)


async def scrape_text(exporter: Exporter) -> str:
    body, headers = await get(exporter.http.url + "/metrics", {"Accept-Encoding": "identity"})
    assert headers["Content-Type"] == TEXT
    return body.decode()


def normalize(exposition: str) -> list[str]:
    """Sorted lines without the left-out families; session ids become <session-1>, ...

    Values go through `%.9g` so that a float sum added up in another order still compares equal.
    """
    kept = []
    for line in exposition.splitlines():
        if not line:
            continue
        if line.startswith("# "):
            name = line.split(" ", 3)[2]
        else:
            match = SAMPLE.fullmatch(line)
            assert match, f"not a sample line: {line!r}"
            name = match["series"].split("{", 1)[0]
            line = f"{match['series']} {float(match['value']):.9g}"
        if name not in LEFT_OUT:
            kept.append(line)
    kept.sort()
    placeholders: dict[str, str] = {}
    for line in kept:
        for session_id in UUID.findall(line):
            placeholders.setdefault(session_id, f"<session-{len(placeholders) + 1}>")
    return sorted(UUID.sub(lambda m: placeholders[m[0]], line) for line in kept)


def read_golden() -> list[str]:
    lines = GOLDEN.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if not line.startswith(GOLDEN_HEADER)]


def write_golden(lines: list[str]) -> None:
    header = (f"{GOLDEN_HEADER}normalized exposition of tests/test_exposition.py SCENARIO; "
              "regenerate with UPDATE_GOLDEN=1")
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")


def family_values(exposition: str, name: str) -> list[float]:
    """The values of a family's samples (counters: their _total samples)."""
    for family in text_string_to_metric_families(exposition):
        if family.name == name:
            return [s.value for s in family.samples if not s.name.endswith("_created")]
    raise AssertionError(f"{name} is not in the exposition")


async def test_golden_exposition(manual_sim: Any) -> None:
    scenario = scenario_from_dict(SCENARIO)
    async with manual_sim(scenario) as (sim, _), exporter_for(sim) as exporter:
        await settle(exporter, 1)  # the first facts poll sees no end: its watermark starts at 0
        while sim.scheduler.next_due() is not None:
            await sim.advance(1.0)
            await settle(exporter, 1)  # streams follow the sessions while their tasks run
        await settle(exporter)
        exposition = await scrape_text(exporter)

    # The event-derived families, loosely: they depend on when events arrived.
    assert sum(family_values(exposition, "armonik_task_status_transitions")) > 0
    assert sum(family_values(exposition, "armonik_observe_events_received")) > 0
    assert family_values(exposition, "armonik_observe_stream_reconnects") == [0.0]  # no fault
    # Each poller and the streams' flusher run as a task (the streams have all closed).
    assert family_values(exposition, "armonik_observe_asyncio_tasks")[0] >= 5
    dropped = {sample.labels["reason"]: sample.value
               for family in text_string_to_metric_families(exposition)
               if family.name == "armonik_observe_dropped" for sample in family.samples}
    # Replays (each subscription's snapshot) and the server's repeats; no cap was reached and
    # no status went backwards.
    assert dropped["replay"] > 0
    assert set(dropped) <= {"replay", "duplicate"}
    assert family_values(exposition, "armonik_observe_last_event_timestamp_seconds")[0] > 0
    lags = family_values(exposition, "armonik_observe_event_lag_seconds")
    assert len(lags) == 2 and all(v >= 0 for v in lags)  # one per followed session

    got = normalize(exposition)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        write_golden(got)
    assert GOLDEN.exists(), f"{GOLDEN} is missing: generate it with UPDATE_GOLDEN=1"
    want = read_golden()
    if got != want:
        diff = "\n".join(difflib.unified_diff(want, got, "golden (want)", "scraped (got)",
                                              lineterm=""))
        pytest.fail(f"/metrics differs from {GOLDEN.name} (UPDATE_GOLDEN=1 regenerates it "
                    f"after an intended change):\n{diff}", pytrace=False)
    assert any("<session-2>" in line for line in got)  # both open sessions are followed


async def test_openmetrics_and_gzip_are_negotiated(manual_sim: Any) -> None:
    scenario = scenario_from_dict(SCENARIO)
    async with manual_sim(scenario) as (sim, _), exporter_for(sim) as exporter:
        await settle(exporter, 1)
        await sim.advance(5.0)
        await settle(exporter)
        url = exporter.http.url + "/metrics"
        text, text_headers = await get(url, {"Accept-Encoding": "identity"})
        om, om_headers = await get(url, {"Accept": OPENMETRICS, "Accept-Encoding": "identity"})
        zipped, zipped_headers = await get(url, {"Accept-Encoding": "gzip"})
        om_zipped, om_zipped_headers = await get(url, {"Accept": OPENMETRICS,
                                                       "Accept-Encoding": "gzip"})

    assert text_headers["Content-Type"] == TEXT
    assert "Content-Encoding" not in text_headers
    assert not text.decode().rstrip().endswith("# EOF")

    assert om_headers["Content-Type"].startswith("application/openmetrics-text")
    assert om.decode().endswith("# EOF\n")
    parsed = {f.name: f.type for f in openmetrics_families(om.decode())}  # strict parser
    assert parsed["armonik_api"] == "info"
    assert parsed["armonik_tasks_ended"] == "counter"
    assert parsed["armonik_task_processing_to_end_seconds"] == "histogram"

    text_names = {f.name for f in text_string_to_metric_families(text.decode())}
    assert zipped_headers["Content-Encoding"] == "gzip"
    assert zipped_headers["Content-Type"] == TEXT
    unzipped = gzip.decompress(zipped).decode()
    assert {f.name for f in text_string_to_metric_families(unzipped)} == text_names

    assert om_zipped_headers["Content-Encoding"] == "gzip"
    assert om_zipped_headers["Content-Type"] == om_headers["Content-Type"]
    om_unzipped = gzip.decompress(om_zipped).decode()
    assert om_unzipped.endswith("# EOF\n")
    assert {f.name for f in openmetrics_families(om_unzipped)} == set(parsed)


async def test_promtool_check_metrics_is_clean() -> None:
    require_prometheus()
    exposition = await scrape_every_family()
    with_data = {table_name(f) for f in text_string_to_metric_families(exposition) if f.samples}
    assert set(EXACT) <= with_data, f"no data in {sorted(set(EXACT) - with_data)}"
    ok, output = promtool_check_metrics(exposition)
    assert ok, f"promtool check metrics:\n{output}"
    assert output == "", f"promtool printed lint warnings:\n{output}"
