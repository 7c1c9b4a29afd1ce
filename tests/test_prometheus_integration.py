"""A real Prometheus scrapes a running exporter; PromQL answers equal the simulator's ground truth.

One Prometheus for the module (its first scrape takes about 6 s). The simulator has finished its
scenario, so every value is stable; the exporter keeps polling and serving on the module's event
loop, and every blocking Prometheus call runs in a thread so that the loop keeps answering scrapes.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from conftest import START_US
from exporter_harness import ended_by_labels, exporter_for, settle
from promserver import DEFAULT_JOB, PrometheusServer, require_prometheus

from armonik_observe.exporters.metrics_table import DURATION_BUCKETS
from armonik_observe.exporters.state_metrics import TASK_STATUSES, compat_partition
from armonik_observe.model import TERMINAL_TASK_STATUSES
from armonik_observe.service import Exporter
from armonik_observe.simulator.clock import ManualClock
from armonik_observe.simulator.scenario import scenario_from_dict
from armonik_observe.simulator.server import Simulator

# The exporter lives on the module's loop, shared by the fixture and the tests.
module_loop = pytest.mark.asyncio(loop_scope="module")

JOB = DEFAULT_JOB  # "metrics-exporter", the job name of ArmoniK's KEDA scalers
SCENARIO = {
    "name": "prometheus",
    "seed": 3,
    "partitions": [{"id": "cpu", "pods": 3}, {"id": "gpu-a100", "pods": 2}],
    "sessions": [
        {"name": "pricing", "partition": "cpu", "graph": {"kind": "bag", "tasks": 60},
         "application": {"name": "pricing"}, "max_retries": 1,
         "profile": {"processing": {"kind": "lognormal", "mean": 0.8, "spread": 0.9},
                     "error_rate": 0.1}},
        {"name": "risk", "partition": "gpu-a100", "start": 1,
         "graph": {"kind": "fanout", "tasks": 20}, "application": {"name": "risk"},
         "profile": {"processing": {"kind": "exponential", "mean": 2}}},
    ],
}
WAIT_S = 30.0


@dataclass
class Running:
    """The finished simulator, the exporter still serving it, and Prometheus scraping it."""

    sim: Simulator
    exporter: Exporter
    prom: PrometheusServer

    async def wait_for(self, expr: str, series: int = 1) -> list[dict[str, Any]]:
        """Query until `expr` returns `series` series (a scrape may be in flight); in a thread."""
        return await asyncio.to_thread(
            self.prom.wait_for, expr, lambda result: len(result) == series, WAIT_S)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def running() -> AsyncIterator[Running]:
    require_prometheus()
    sim = Simulator(scenario_from_dict(SCENARIO), clock=ManualClock(START_US))
    async with sim, exporter_for(sim) as exporter:
        await settle(exporter, 1)  # the first facts poll sees no end: its watermark starts at 0
        while sim.scheduler.next_due() is not None:
            await sim.advance(1.0)
            exporter.streams.flush()
        await settle(exporter)
        target = exporter.http.url.removeprefix("http://")
        prom = PrometheusServer(target, job_name=JOB, scrape_interval="1s")
        await asyncio.to_thread(prom.__enter__)
        try:
            await asyncio.to_thread(prom.wait_for_scrape, WAIT_S)
            yield Running(sim, exporter, prom)
        finally:
            await asyncio.to_thread(prom.stop)


def value(sample: dict[str, Any]) -> float:
    return float(sample["value"][1])


def bucket_quantile(q: float, bounds: Sequence[float], observations: Sequence[float]) -> float:
    """histogram_quantile as Prometheus computes it (promql/quantile.go, bucketQuantile).

    Cumulative `le` buckets; rank = q * count; the first bucket whose count reaches the rank;
    linear interpolation inside it from the previous bound (0 for the first bucket); in +Inf,
    the highest finite bound.
    """
    edges = [*bounds, math.inf]
    cumulative = [float(sum(1 for v in observations if v <= edge)) for edge in edges]
    if cumulative[-1] == 0:
        return math.nan
    rank = q * cumulative[-1]
    b = next(i for i, count in enumerate(cumulative) if count >= rank)
    if b == len(edges) - 1:
        return edges[-2]
    if b == 0 and edges[0] <= 0:
        return edges[0]
    start, end, count = 0.0, edges[b], cumulative[b]
    if b > 0:
        start = edges[b - 1]
        count -= cumulative[b - 1]
        rank -= cumulative[b - 1]
    return start + (end - start) * (rank / count)


def test_bucket_quantile_follows_prometheus() -> None:
    bounds = (1.0, 2.0, 4.0)
    assert bucket_quantile(0.5, bounds, [0.5, 1.5, 1.5, 3.0]) == pytest.approx(1.5)
    assert bucket_quantile(0.25, bounds, [0.5, 1.5, 1.5, 3.0]) == pytest.approx(1.0)
    assert bucket_quantile(0.1, bounds, [0.5, 1.5, 1.5, 3.0]) == pytest.approx(0.4)
    assert bucket_quantile(0.99, bounds, [0.5, 9.0]) == 4.0  # in +Inf: the highest bound
    assert math.isnan(bucket_quantile(0.5, bounds, []))


@module_loop
async def test_task_counts_equal_the_truth(running: Running) -> None:
    require_prometheus()
    truth = Counter((t.partition_id, t.status.name) for t in running.sim.plane.tasks.values())
    assert truth[("cpu", "COMPLETED")] > 0
    completed = await running.wait_for('armonik_tasks{partition="cpu",status="COMPLETED"}')
    assert value(completed[0]) == truth[("cpu", "COMPLETED")]
    assert completed[0]["metric"]["job"] == JOB

    every = await running.wait_for("armonik_tasks", series=2 * len(TASK_STATUSES))
    got = {(s["metric"]["partition"], s["metric"]["status"]): value(s) for s in every}
    want = {(p, status): float(truth[(p, status)])
            for p in ("cpu", "gpu-a100") for status in TASK_STATUSES}
    assert got == want


@module_loop
async def test_ended_totals_equal_the_truth(running: Running) -> None:
    require_prometheus()
    truth = ended_by_labels(running.sim.true_tasks())
    total = await running.wait_for("sum(armonik_tasks_ended_total)")
    assert value(total[0]) == sum(truth.values()) > 50

    by_labels = await running.wait_for(
        "sum by (partition, application, status) (armonik_tasks_ended_total)", len(truth))
    got = {(s["metric"]["partition"], s["metric"]["application"], s["metric"]["status"]):
           value(s) for s in by_labels}
    assert got == {labels: float(count) for labels, count in truth.items()}


@module_loop
@pytest.mark.parametrize("q", [0.5, 0.9])
async def test_processing_quantile_matches_the_true_durations(running: Running, q: float) -> None:
    require_prometheus()
    durations = [t.processing_to_end / 1_000_000 for t in running.sim.true_tasks()
                 if t.status in TERMINAL_TASK_STATUSES and t.processing_to_end is not None]
    expected = bucket_quantile(q, DURATION_BUCKETS, durations)
    assert 0 < expected < DURATION_BUCKETS[-1]  # interpolated inside a finite bucket
    result = await running.wait_for(
        f"histogram_quantile({q}, sum by (le) (armonik_task_processing_to_end_seconds_bucket))")
    assert value(result[0]) == pytest.approx(expected, rel=1e-9)
    # The exact quantile of the durations lies in the same bucket as the interpolated one.
    exact = sorted(durations)[max(0, math.ceil(q * len(durations)) - 1)]
    upper = next(b for b in DURATION_BUCKETS if b >= expected)
    lower = max([0.0, *(b for b in DURATION_BUCKETS if b < upper)])
    assert lower <= exact <= upper


@module_loop
async def test_keda_queued_metric_is_scraped_and_zero_at_the_end(running: Running) -> None:
    require_prometheus()
    name = f"armonik_{compat_partition('gpu-a100')}_tasks_queued"
    assert name == "armonik_gpu_a100_tasks_queued"
    result = await running.wait_for(f'{name}{{job="{JOB}"}}')
    assert result[0]["metric"]["instance"] == running.prom.target
    assert value(result[0]) == 0
    assert not any(t.status.name in ("SUBMITTED", "DISPATCHED", "PROCESSING")
                   for t in running.sim.plane.tasks.values())
