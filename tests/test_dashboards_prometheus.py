"""Every PromQL expression of the dashboards and the rules, run on a real Prometheus.

A busy simulated cluster runs in real time, the exporter follows it (archive and traces on) and
Debian's Prometheus scrapes it every second, loading the shipped rules. Then, as Grafana would:
each dashboard's variables are resolved through Prometheus's API, substituted into every query
(`$__rate_interval` as Grafana computes it), and every panel query must return data. The same
queries with a job that does not exist must return nothing: each one filters on `$job`. Every
rule expression must evaluate, every recording rule must return data, and Prometheus must report
every rule healthy with no alert firing on a healthy cluster.

The committed files are what is tested: tests/test_dashboards_generated.py ties them to the code.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from exporter_harness import exporter_for, settle
from promserver import PrometheusServer, require_prometheus

from armonik_observe.dashboards import rules
from armonik_observe.dashboards.catalog import (
    PanelQuery,
    label_values_query,
    panel_queries,
    rule_expressions,
    variables,
)
from armonik_observe.dashboards.promql import DEFAULT_JOB, rate_interval, substitute
from armonik_observe.service import Exporter
from armonik_observe.simulator.scenario import scenario_from_dict
from armonik_observe.simulator.server import Simulator

module_loop = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = {path.stem: json.loads(path.read_text(encoding="utf-8"))
              for path in sorted((ROOT / "dashboards" / "grafana").glob("*.json"))}
RULES = ROOT / "dashboards" / "prometheus" / rules.RULES_FILE
SHIPPED_RULES = yaml.safe_load(RULES.read_text(encoding="utf-8"))
SCRAPE_S = 1.0
INTERVAL_S = 1.0  # $__interval of a panel showing the last minute on a wide screen
SCRAPES = 6  # before the queries run: rate windows of 4 s hold several samples
WAIT_S = 45.0
POLL = {"session_interval": 0.5, "count_interval": 0.5, "health_interval": 0.5,
        "facts_interval": 0.5, "archive_flush_interval": 1.0}

# Busy in real time: two partitions, short tasks, failures and retries, sessions arriving while
# Prometheus scrapes, each with a deadline.
PROFILE = {"processing": {"kind": "lognormal", "mean": 0.4, "spread": 0.5},
           "error_rate": 0.08, "timeout_rate": 0.01}
SCENARIO = {
    "name": "dashboards",
    "seed": 12,
    "partitions": [{"id": "cpu", "pods": 4, "pod_max": 8},
                   {"id": "gpu-a100", "pods": 2, "slots": 2, "pod_max": 4}],
    "sessions": [
        {"name": "pricing", "partition": "cpu", "count": 3, "every": 3,
         "graph": {"kind": "bag", "tasks": 600}, "application": {"name": "pricing"},
         "profile": PROFILE, "max_retries": 1, "max_duration": 3, "deadline": 120},
        {"name": "risk", "partition": "gpu-a100", "count": 2, "start": 1, "every": 4,
         "graph": {"kind": "bag", "tasks": 300}, "application": {"name": "risk"},
         "profile": PROFILE, "deadline": 30},
    ],
}


@dataclass
class Cluster:
    """The running simulator, the exporter and the Prometheus scraping it."""

    sim: Simulator
    exporter: Exporter
    prom: PrometheusServer
    start: float  # when Prometheus started

    async def call(self, path: str, **params: str) -> Any:
        """A Prometheus API call, in a thread: the loop keeps serving the scrapes."""
        return await asyncio.to_thread(self.prom.api, path, params)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    require_prometheus()
    directory = tmp_path_factory.mktemp("dashboards")
    sim = Simulator(scenario_from_dict(SCENARIO), record_events=False)
    # Every sink on, so that every panel has its series: the archive and traces to a file.
    async with sim, exporter_for(sim, clock=time.time, archive=directory / "archive",
                                 traces_file=directory / "spans.jsonl", **POLL) as exporter:
        await settle(exporter, 1)
        target = exporter.http.url.removeprefix("http://")
        prom = PrometheusServer(target, job_name=DEFAULT_JOB, scrape_interval=f"{SCRAPE_S:g}s",
                                rule_files=[RULES])
        await asyncio.to_thread(prom.__enter__)
        start = time.time()  # before the first scrape: range queries cover every sample
        try:
            await asyncio.to_thread(prom.wait_for_scrape, WAIT_S)
            # Enough scrapes for every rate window, and the recording rules evaluated on them.
            await asyncio.to_thread(
                prom.wait_for, f"count_over_time(up{{job=\"{DEFAULT_JOB}\"}}[1m]) >= {SCRAPES}",
                bool, WAIT_S)
            await asyncio.to_thread(prom.wait_for, "partition_status:armonik_tasks_ended:rate5m",
                                    bool, WAIT_S)
            yield Cluster(sim, exporter, prom, start)
        finally:
            await asyncio.to_thread(prom.stop)


def finite(values: list[Any]) -> bool:
    """Whether any [time, "value"] pair holds a number (not NaN, not ±Inf)."""
    return any(math.isfinite(float(value)) for _, value in values)


async def run(cluster: Cluster, query: PanelQuery, expr: str) -> list[dict[str, Any]]:
    """The query as Grafana sends it: a range query over the scraped period, or instant."""
    if query.instant:
        data = await cluster.call("query", query=expr)
        return [{**s, "values": [s["value"]]} for s in data["result"]]
    data = await cluster.call("query_range", query=expr, start=f"{cluster.start:.3f}",
                              end=f"{time.time():.3f}", step=f"{SCRAPE_S:g}")
    result: list[dict[str, Any]] = data["result"]
    return result


async def run_until_data(cluster: Cluster, query: PanelQuery, expr: str,
                         within: float = 10.0) -> list[dict[str, Any]]:
    """An instant query again, a scrape interval apart, until it returns data (or `within`)."""
    deadline = time.monotonic() + within
    result: list[dict[str, Any]] = []
    while not result and time.monotonic() < deadline:
        await asyncio.sleep(SCRAPE_S)  # the next scrape, not a guess at a duration
        result = await run(cluster, query, expr)
    return result


async def variable_values(cluster: Cluster, variable: dict[str, Any],
                          chosen: dict[str, str]) -> list[str]:
    """What Grafana lists for a variable, its query run with the variables before it."""
    if variable["type"] == "custom":
        return [value.strip() for value in variable["query"].split(",")]
    selector, label = label_values_query(substitute(variable["query"], chosen))
    params = {"match[]": selector} if selector else {}
    values: list[str] = await cluster.call(f"label/{label}/values", **params)
    return values


@dataclass
class Choices:
    """Each variable's default value (All where offered), and the values it lists."""

    defaults: dict[str, str]
    listed: dict[str, list[str]]


async def resolve(cluster: Cluster, model: dict[str, Any]) -> Choices:
    """Resolve the variables in dashboard order, each query with the defaults before it."""
    defaults = {"__rate_interval": f"{rate_interval(INTERVAL_S, SCRAPE_S):g}s"}
    listed: dict[str, list[str]] = {}
    for name, variable in variables(model).items():
        if variable["type"] == "datasource":
            continue
        values = await variable_values(cluster, variable, defaults)
        assert values, f"{model['uid']}: the variable ${name} lists nothing"
        current = variable.get("current", {}).get("value")
        if variable.get("includeAll"):
            defaults[name] = variable["allValue"]
        elif current:
            assert current in values, f"{model['uid']}: ${name}'s default {current} is not listed"
            defaults[name] = current
        else:
            defaults[name] = values[0]
        listed[name] = values
    return Choices(defaults, listed)


def valuations(query: PanelQuery, choices: Choices) -> list[dict[str, str]]:
    """The variable values to run a query with: the defaults, and each value of the variable
    the panel repeats over or, in the session drill-down, of the session."""
    spread = query.repeat or ("session" if "session" in choices.listed else "")
    if not spread:
        return [choices.defaults]
    return [{**choices.defaults, spread: value} for value in choices.listed[spread]]


@module_loop
@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
async def test_every_panel_query_returns_data(cluster: Cluster, uid: str) -> None:
    model = DASHBOARDS[uid]
    choices = await resolve(cluster, model)
    assert DEFAULT_JOB in choices.listed["job"]
    assert cluster.prom.target in choices.listed["instance"]
    empty, never_a_number, without_filter = [], [], []
    queries = list(panel_queries(model))
    assert queries
    for query in queries:
        numbers = False
        for values in valuations(query, choices):
            expr = substitute(query.expr, values)
            result = await run(cluster, query, expr)
            if not result and query.instant:  # a scrape late past its timeout marks it stale
                result = await run_until_data(cluster, query, expr)
            if not result:
                empty.append(f"{query.panel} [{query.ref}] {expr}")
            numbers = numbers or any(finite(series["values"]) for series in result)
            other_job = substitute(query.expr, {**values, "job": "no-such-job"})
            if await run(cluster, query, other_job):
                without_filter.append(f"{query.panel} [{query.ref}]")
        if not numbers:
            never_a_number.append(f"{query.panel} [{query.ref}] {query.expr}")
    assert not empty, "panel queries without data:\n" + "\n".join(empty)
    # NaN is data (a session whose tasks all still wait has no ETA yet, shown as "unknown"),
    # but each query shows a number for some value of its variables.
    assert not never_a_number, "panel queries never a number:\n" + "\n".join(never_a_number)
    assert not without_filter, f"queries not filtered on $job: {without_filter}"


@module_loop
async def test_every_rule_expression_evaluates(cluster: Cluster) -> None:
    model = SHIPPED_RULES
    expressions = list(rule_expressions(model))
    records = {rule["record"] for group in model["groups"] for rule in group["rules"]
               if "record" in rule}
    no_data = []
    for name, expr in expressions:
        data = await cluster.call("query", query=expr)  # a parse error raises
        if name in records and not data["result"]:
            no_data.append(name)
    assert not no_data, f"recording rules without data: {no_data}"


@module_loop
async def test_prometheus_evaluates_every_rule_healthy_and_nothing_fires(
        cluster: Cluster) -> None:
    want = sum(len(group["rules"]) for group in SHIPPED_RULES["groups"])
    groups = (await cluster.call("rules"))["groups"]
    loaded = [rule for group in groups for rule in group["rules"]]
    assert len(loaded) == want
    unhealthy = [(r["name"], r.get("lastError")) for r in loaded if r["health"] != "ok"]
    assert not unhealthy
    firing = [r["name"] for r in loaded if r.get("state") == "firing"]
    assert not firing, f"a healthy busy cluster pages: {firing}"
