"""Duration statistics equal numpy's over the simulator's own records, for every measure and every
grouping; averaging per-page means (what armonik-analytics 0.0.2 does) does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from analytics_truth import (
    MEASURE_ENDS,
    archive_truth,
    assert_stats_equal,
    ended,
    grouped,
    stats,
    values,
)
from armonik.client import ArmoniKTasks
from armonik.common import Task
from conftest import START_US
from test_archive_truth import MIXED

from armonik_observe.analytics.durations import MEASURES, duration_stats
from armonik_observe.analytics.frames import Selection, from_archive
from armonik_observe.analytics.live import from_live
from armonik_observe.collectors.channel import parse_endpoint
from armonik_observe.simulator.clock import ManualClock
from armonik_observe.simulator.embedded import SimulatorThread
from armonik_observe.simulator.records import SimTask
from armonik_observe.simulator.scenario import scenario_from_dict
from armonik_observe.simulator.server import Simulator

# Each grouping column, read off a simulator task.
KEYS = {
    "session_id": lambda t: t.session_id,
    "partition_id": lambda t: t.options.partition_id,
    "application_name": lambda t: t.options.application_name,
    "status": lambda t: t.status.name,
    "pod_hostname": lambda t: t.pod_hostname,
}


def truth_by(tasks: list[SimTask], by: tuple[str, ...]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """(group..., measure) -> numpy statistics, for the groups where the measure is set."""
    expected = {}
    groups = grouped(tasks, lambda t: tuple(KEYS[column](t) for column in by))
    for key, members in groups.items():
        for measure in MEASURE_ENDS:
            seconds = values(members, measure)
            if len(seconds):
                expected[(*key, measure)] = stats(seconds)
    return expected


@pytest.mark.parametrize("by", [(), ("session_id",), ("partition_id",), ("application_name",),
                                ("status",), ("pod_hostname",), ("session_id", "partition_id")])
async def test_duration_statistics_equal_numpy_over_the_truth(
    manual_sim: Any, tmp_path: Path, by: tuple[str, ...]
) -> None:
    async with manual_sim(MIXED) as (sim, _):
        await sim.run_until_idle()
        await archive_truth(sim, tmp_path / "archive")
        truth = ended(sim)
    assert {t.status.name for t in truth} >= {"COMPLETED", "ERROR", "RETRIED", "TIMEOUT",
                                              "CANCELLED"}
    frames = from_archive(tmp_path / "archive", Selection())
    rows = duration_stats(frames.tasks, by).collect().to_dicts()
    got = {tuple(row[c] for c in (*by, "measure")): row for row in rows}
    expected = truth_by(truth, by)
    assert sorted(got, key=str) == sorted(expected, key=str)
    for key, want in expected.items():
        assert_stats_equal(got[key], want, key)
    # Cancelled tasks that never started count in creation_to_end, not in processing.
    overall = truth_by(truth, ())
    assert overall[("creation_to_end",)]["count"] > overall[("processing",)]["count"]


def test_every_measure_is_checked() -> None:
    assert set(MEASURES) == set(MEASURE_ENDS)


# 250 tasks whose processing times vary, read 100 a page: pages of 100, 100 and 50.
PAGED = scenario_from_dict({
    "name": "paged",
    "seed": 11,
    "partitions": [{"id": "cpu", "pods": 4}],
    "sessions": [{"name": "paged", "partition": "cpu", "graph": {"kind": "bag", "tasks": 250},
                  "profile": {"processing": {"kind": "lognormal", "mean": 1.0, "spread": 0.8}}}],
})
PAGE_SIZE = 100


def page_means(endpoint: str, session: str) -> list[float]:
    """The mean of ended - started on each page, as the official client pages them
    (armonik-analytics 0.0.2 reads the same pages)."""
    means = []
    with grpc.insecure_channel(endpoint) as channel:
        client = ArmoniKTasks(channel)
        page = 0
        while True:
            _, tasks = client.list_tasks(Task.session_id == session, page=page,
                                         page_size=PAGE_SIZE)
            if not tasks:
                return means
            means.append(float(np.mean([(t.ended_at - t.started_at).total_seconds()
                                        for t in tasks])))
            page += 1


def test_per_page_means_give_a_wrong_answer_and_ours_do_not() -> None:
    thread = SimulatorThread(lambda: Simulator(PAGED, clock=ManualClock(START_US)))
    with thread as sim:
        thread.call(sim.run_until_idle(), timeout=60)
        [session] = sim.workload.session_ids
        truth = values(sim.true_tasks(), "processing_to_end")
        means = page_means(sim.target, session)
        frames = from_live(parse_endpoint(sim.endpoint), Selection((session,)),
                           page_size=PAGE_SIZE)
    true_mean = float(np.mean(truth))
    assert len(truth) == 250 and len(means) == 3
    summed, averaged = sum(means), float(np.mean(means))  # 0.0.2 adds them up
    assert abs(summed - true_mean) > 0.5 * true_mean
    assert abs(averaged - true_mean) > 1e-3 * true_mean
    [row] = duration_stats(frames.tasks).collect().filter(
        measure="processing_to_end").to_dicts()
    assert row["count"] == 250
    assert abs(row["mean"] - true_mean) <= 1e-9 * true_mean
