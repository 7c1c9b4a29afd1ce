"""PNG previews of the dashboards, drawn from their own queries on a real Prometheus.

No Grafana runs here: a busy simulated cluster, the exporter and Prometheus run for a while,
then each committed dashboard's variables are resolved and its queries run exactly as in
tests/test_dashboards_prometheus.py, and matplotlib lays the answers out on the dashboard's
grid, repeats expanded as Grafana does:

    python -m armonik_observe.dashboards.previews --seconds 150 --out docs/dashboards
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from armonik_observe.archive.output import ArchiveOutput
from armonik_observe.config import ServeSettings
from armonik_observe.dashboards.catalog import label_values_query, variables
from armonik_observe.dashboards.drawing import Placed, Series, draw_dashboard
from armonik_observe.dashboards.local_prometheus import LocalPrometheus
from armonik_observe.dashboards.promql import rate_interval, substitute
from armonik_observe.dashboards.queries import TERMINAL, none_of
from armonik_observe.service import Exporter
from armonik_observe.simulator.scenario import scenario_from_dict
from armonik_observe.simulator.server import Simulator

SCRAPE_S = 2.0
# A few minutes of history: the busy-workers rate over 1 minute, not its default 5, and the
# archive measured every 30 s, not every 5 minutes.
PREVIEW_VALUES = {"busy_window": "1m"}
ARCHIVE_UPKEEP_S = 30.0
GRID_WIDTH = 24
PROFILE = {"processing": {"kind": "lognormal", "mean": 1.2, "spread": 0.6},
           "acquisition": {"kind": "exponential", "mean": 0.05},
           "error_rate": 0.05, "timeout_rate": 0.005}
# Three partitions kept busy for a few minutes; sessions arrive, queue, finish; each has a
# deadline, one of them too short.
SCENARIO = {
    "name": "previews",
    "seed": 21,
    "partitions": [{"id": "default", "pods": 6, "pod_max": 10},
                   {"id": "pricing", "pods": 8, "slots": 2, "pod_max": 16},
                   {"id": "risk-batch", "pods": 3, "pod_max": 6}],
    "sessions": [
        {"name": "pricing", "partition": "pricing", "count": 4, "every": 30,
         "graph": {"kind": "bag", "tasks": 900}, "application": {"name": "pricing"},
         "profile": PROFILE, "max_retries": 2, "max_duration": 30, "deadline": 240},
        {"name": "risk", "partition": "risk-batch", "count": 2, "start": 10, "every": 60,
         "graph": {"kind": "fanout", "tasks": 120}, "application": {"name": "risk"},
         "profile": {**PROFILE, "processing": {"kind": "lognormal", "mean": 3, "spread": 0.5}},
         "deadline": 60},
        {"name": "dag", "partition": "default", "start": 5,
         "graph": {"kind": "subtasking", "tasks": 40},
         "profile": {"processing": 0.8, "subtask_depth": 2, "subtask_children": 3},
         "deadline": 600},
    ],
}


class Prometheus:
    """Queries against a Prometheus's HTTP API."""

    def __init__(self, client: aiohttp.ClientSession, url: str) -> None:
        self._client = client
        self._url = url

    async def api(self, path: str, **params: str) -> Any:
        """`/api/v1/<path>`'s data."""
        async with self._client.get(f"{self._url}/api/v1/{path}", params=params) as response:
            payload = await response.json()
        if payload["status"] != "success":
            raise RuntimeError(f"{path} {params}: {payload.get('error')}")
        return payload["data"]


async def defaults(prom: Prometheus, model: dict[str, Any], interval_s: float
                   ) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Each variable's default value (All where offered) and the values it lists."""
    chosen = {"__rate_interval": f"{rate_interval(interval_s, SCRAPE_S):g}s"}
    listed: dict[str, list[str]] = {}
    for name, variable in variables(model).items():
        if variable["type"] == "datasource":
            continue
        if variable["type"] == "custom":
            values = [v.strip() for v in variable["query"].split(",")]
        else:
            selector, label = label_values_query(substitute(variable["query"], chosen))
            params = {"match[]": selector} if selector else {}
            values = sorted(await prom.api(f"label/{label}/values", **params))
        listed[name] = values
        current = variable.get("current", {}).get("value")
        chosen[name] = (variable["allValue"] if variable.get("includeAll")
                        else current if current in values else values[0] if values else "")
    if "session" in chosen:
        chosen["session"] = await busiest_session(prom) or chosen["session"]
    return {**chosen, **{k: v for k, v in PREVIEW_VALUES.items() if k in chosen}}, listed


async def busiest_session(prom: Prometheus) -> str | None:
    """The followed session with the most completed tasks and some left: the liveliest
    drill-down (Grafana would open the first listed)."""
    completed = 'sum by (session) (armonik_session_tasks{status="COMPLETED"})'
    left = f"sum by (session) (armonik_session_tasks{{{none_of('status', TERMINAL)}}}) > 0"
    found = (await prom.api("query", query=f"topk(1, {completed} and on (session) {left})")
             )["result"]
    return str(found[0]["metric"]["session"]) if found else None


def blocks(model: dict[str, Any]) -> list[tuple[dict[str, Any] | None, list[dict[str, Any]]]]:
    """The dashboard's rows, each with the panels under it (the first may have no row)."""
    found: list[tuple[dict[str, Any] | None, list[dict[str, Any]]]] = []
    for panel in model["panels"]:
        if panel["type"] == "row":
            found.append((panel, list(panel.get("panels", []))))
        elif found:
            found[-1][1].append(panel)
        else:
            found.append((None, [panel]))
    return found


def expand(model: dict[str, Any], listed: dict[str, list[str]]) -> list[Placed]:
    """Panels on the grid with their repeats expanded, as Grafana lays them out: a repeated
    panel fills its line and wraps, a repeated row copies its block; what follows moves down."""
    placed: list[Placed] = []
    shift = 0
    for row, members in blocks(model):
        repeat = row.get("repeat", "") if row else ""
        top = row["gridPos"]["y"] if row else min(p["gridPos"]["y"] for p in members)
        height = max([top + 1, *(p["gridPos"]["y"] + p["gridPos"]["h"] for p in members)]) - top
        for index, value in enumerate((listed.get(repeat) or [""]) if repeat else [""]):
            scope = {repeat: value} if repeat else {}
            shift += height if index else 0
            if row is not None:
                placed.append(Placed(row, 0, top + shift, GRID_WIDTH, 1, scope))
            shift += _place(members, listed, scope, shift, placed)
    return placed


def _place(members: list[dict[str, Any]], listed: dict[str, list[str]], scope: dict[str, str],
           shift: int, placed: list[Placed]) -> int:
    """Place a row's panels `shift` lines down; return the lines its repeated panels add (a
    repeated panel is alone on its line)."""
    added = 0
    for panel in members:
        grid = panel["gridPos"]
        own = panel.get("repeat", "")
        values = (listed.get(own) or [""]) if own else [""]
        per_line = max(1, GRID_WIDTH // grid["w"])
        for index, value in enumerate(values):
            x = grid["x"] + (index % per_line) * grid["w"]
            y = grid["y"] + shift + added + (index // per_line) * grid["h"]
            placed.append(Placed(panel, x, y, grid["w"], grid["h"],
                                 {**scope, own: value} if own else scope))
        added += (math.ceil(len(values) / per_line) - 1) * grid["h"]
    return added


async def series_of(prom: Prometheus, placed: Placed, chosen: dict[str, str], start: float,
                    end: float) -> list[list[Series]]:
    """Each target's series, its variables substituted (range or instant, as Grafana asks)."""
    found = []
    for target in placed.panel.get("targets", []):
        expr = substitute(target["expr"], {**chosen, **placed.values})
        if target.get("instant"):
            data = await prom.api("query", query=expr, time=f"{end:.3f}")
            rows = [(s["metric"], [s["value"]]) for s in data["result"]]
        else:
            data = await prom.api("query_range", query=expr, start=f"{start:.3f}",
                                  end=f"{end:.3f}", step=f"{SCRAPE_S:g}")
            rows = [(s["metric"], s["values"]) for s in data["result"]]
        found.append([Series.of(metric, values, target.get("legendFormat", ""), expr)
                      for metric, values in rows])
    return found


async def render(prom_url: str, dashboards: Sequence[Path], out: Path, start: float,
                 end: float) -> list[Path]:
    """One PNG per dashboard, drawn from Prometheus's answers over [start, end]."""
    written = []
    async with aiohttp.ClientSession() as client:
        prom = Prometheus(client, prom_url)
        for path in dashboards:
            model = json.loads(path.read_text(encoding="utf-8"))
            chosen, listed = await defaults(prom, model, SCRAPE_S)
            layout = expand(model, listed)
            data = [await series_of(prom, p, chosen, start, end) if p.panel["type"] != "row"
                    else [] for p in layout]
            target = out / f"{model['uid']}.png"
            draw_dashboard(model, [replace(p, data=d) for p, d in zip(layout, data,
                                                                      strict=True)],
                           chosen, target)
            written.append(target)
    return written


def free_port() -> int:
    """A loopback port free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def record(seconds: float, dashboards: Sequence[Path], out: Path) -> list[Path]:
    """Run the cluster for `seconds`, then render the dashboards."""
    sim = Simulator(scenario_from_dict(SCENARIO), record_events=False)
    with tempfile.TemporaryDirectory(prefix="previews-") as directory:
        async with sim:
            settings = ServeSettings.build(
                endpoint=sim.endpoint, listen="127.0.0.1:0", session_interval=2.0,
                count_interval=2.0, health_interval=2.0, facts_interval=1.0)
            archive = ArchiveOutput(Path(directory) / "archive", flush_interval=2.0)
            archive.upkeep.interval = ARCHIVE_UPKEEP_S
            async with Exporter(settings, sinks=[archive]) as exporter:
                target = exporter.http.url.removeprefix("http://")
                async with LocalPrometheus(target, listen=f"127.0.0.1:{free_port()}",
                                           scrape_interval=f"{SCRAPE_S:g}s") as prom:
                    start = time.time()
                    print(f"recording {seconds:g} s of the cluster on {prom.url} ...")
                    await asyncio.sleep(seconds)  # the cluster runs: nothing to wait on
                    return await render(prom.url, dashboards, out, start, time.time())


def main(argv: Sequence[str] | None = None) -> int:
    """Record and render the previews."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=150.0,
                        help="how long the cluster runs before the previews are drawn")
    parser.add_argument("--dashboards", type=Path, default=Path("dashboards/grafana"))
    parser.add_argument("--out", type=Path, default=Path("docs/dashboards"))
    options = parser.parse_args(argv)
    options.out.mkdir(parents=True, exist_ok=True)
    paths = asyncio.run(record(options.seconds, sorted(options.dashboards.glob("*.json")),
                               options.out))
    for path in paths:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
