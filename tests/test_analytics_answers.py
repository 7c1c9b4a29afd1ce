"""Curves, pods, stragglers, retries, errors, the task graph, comparisons and the JSON summary of
each session equal what the simulator's own records say, recomputed here in plain Python."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from analytics_truth import SCENARIO, archive_truth, assert_stats_equal, close, ended, stats, values
from click.testing import CliRunner

from armonik_observe.analytics.analysis import SessionAnalysis, analyses
from armonik_observe.analytics.compare import compare
from armonik_observe.analytics.frames import Selection, from_archive
from armonik_observe.analytics.stragglers import FAILED
from armonik_observe.cli import main
from armonik_observe.simulator.records import SimTask
from armonik_observe.simulator.server import Simulator

Sessions = dict[str, list[SimTask]]


@pytest.fixture
async def played(manual_sim: Any, tmp_path: Path) -> tuple[Path, Simulator, Sessions]:
    """The scenario played to its end and archived: (archive, simulator, tasks by session)."""
    async with manual_sim(SCENARIO) as (sim, _):
        await sim.run_until_idle()
        await archive_truth(sim, tmp_path / "archive")
    sessions: Sessions = {}
    for task in ended(sim):
        sessions.setdefault(task.session_id, []).append(task)
    return tmp_path / "archive", sim, sessions


def analysed(directory: Path) -> dict[str, SessionAnalysis]:
    found = analyses(from_archive(directory, Selection()))
    return {analysis.session_id: analysis for analysis in found}


def seconds(micros: int) -> float:
    return micros / 1_000_000


def micros(moment: Any) -> int:
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


# -- truth, in plain Python ---------------------------------------------------------------------


def true_edges(sim: Simulator, tasks: list[SimTask]) -> set[tuple[str, str, str]]:
    """Submission, data (the result's final owner) and retry edges between the tasks."""
    ids = {t.task_id for t in tasks}
    results = sim.plane.results
    edges = {(t.created_by, t.task_id, "submission") for t in tasks if t.created_by}
    edges |= {(results[r].owner_task_id, t.task_id, "data") for t in tasks
              for r in t.data_dependencies if results[r].owner_task_id}
    edges |= {(t.retry_of_ids[-1], t.task_id, "retry") for t in tasks if t.retry_of_ids}
    return {edge for edge in edges if edge[0] in ids and edge[0] != edge[1]}


def true_critical_path(tasks: list[SimTask], edges: set[tuple[str, str, str]]) -> list[str]:
    by_id = {t.task_id: t for t in tasks}
    before: dict[str, list[str]] = {}
    for source, target, _ in edges:
        before.setdefault(target, []).append(source)
    path = [max(tasks, key=lambda t: (t.ended_at, t.task_id)).task_id]
    while before.get(path[-1]):
        path.append(max(before[path[-1]], key=lambda s: (by_id[s].ended_at, s)))
    return path[::-1]


def true_lower_bound(tasks: list[SimTask], edges: set[tuple[str, str, str]]) -> float:
    work = {t.task_id: seconds(t.processing_to_end or 0) for t in tasks}
    before: dict[str, list[str]] = {}
    for source, target, _ in edges:
        before.setdefault(target, []).append(source)
    finish: dict[str, float] = {}

    def finish_of(task: str) -> float:
        if task not in finish:
            finish[task] = work[task] + max((finish_of(p) for p in before.get(task, ())),
                                            default=0.0)
        return finish[task]

    return max(finish_of(task) for task in work)


def busy_union(intervals: list[tuple[int, int]]) -> int:
    total, reach = 0, None
    for start, end in sorted(intervals):
        if reach is None or start > reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total


def makespan(tasks: list[SimTask]) -> float:
    return seconds(max(t.ended_at for t in tasks) - min(t.created_at for t in tasks))


# -- the tests ----------------------------------------------------------------------------------


async def test_the_task_graph_equals_the_truth(played: tuple[Path, Simulator, Sessions]) -> None:
    directory, sim, sessions = played
    found = analysed(directory)
    lengths = []
    for session, tasks in sessions.items():
        analysis = found[session]
        edges = true_edges(sim, tasks)
        assert set(analysis.edges.iter_rows()) == edges, session
        path = true_critical_path(tasks, edges)
        assert list(analysis.critical_path.task_ids) == path, session
        by_id = {t.task_id: t for t in tasks}
        assert analysis.critical_path.seconds == seconds(by_id[path[-1]].ended_at
                                                         - by_id[path[0]].created_at)
        assert close(analysis.lower_bound.seconds, true_lower_bound(tasks, edges)), session
        assert analysis.makespan == makespan(tasks)
        work = sum(seconds(t.processing_to_end or 0) for t in tasks)
        assert close(analysis.parallelism, work / makespan(tasks)), session
        lengths.append(len(path))
    kinds = {kind for s, tasks in sessions.items() for _, _, kind in true_edges(sim, tasks)}
    assert kinds == {"submission", "data", "retry"}
    assert max(lengths) >= 12  # the chain: every task waited for the one before


async def test_curves_equal_counts_at_each_grid_point(
    played: tuple[Path, Simulator, Sessions]
) -> None:
    directory, _, sessions = played
    found = analysed(directory)
    for session, tasks in sessions.items():
        curves = found[session].curves
        times = curves["time"].unique().sort()
        step = micros(times[1]) - micros(times[0])
        assert micros(times[0]) == min(t.created_at for t in tasks)
        assert micros(times[-1]) > max(t.ended_at for t in tasks)
        for row in curves.iter_rows(named=True):
            at = micros(row["time"])
            mine = [t for t in tasks if t.options.partition_id == row["partition_id"]]
            assert row["ended"] == sum(at <= t.ended_at < at + step for t in mine)
            assert row["backlog"] == sum(
                t.submitted_at is not None and t.submitted_at <= at
                and (t.started_at or t.ended_at) > at for t in mine)
            assert row["concurrency"] == sum(
                t.started_at is not None and t.started_at <= at < t.ended_at for t in mine)
            assert row["throughput"] == row["ended"] / (step / 1e6)
        for partition, part in curves.group_by("partition_id"):
            assert part["ended"].sum() == sum(t.options.partition_id == partition[0]
                                              for t in tasks)


async def test_pods_usage_equals_the_union_of_their_tasks(
    played: tuple[Path, Simulator, Sessions]
) -> None:
    directory, _, sessions = played
    found = analysed(directory)
    for session, tasks in sessions.items():
        ran = [t for t in tasks if t.pod_hostname and t.started_at is not None]
        pods: dict[str, list[tuple[int, int]]] = {}
        for task in ran:
            pods.setdefault(task.pod_hostname, []).append((task.started_at, task.ended_at))
        usage = {row["pod_hostname"]: row for row in found[session].pods.iter_rows(named=True)}
        assert set(usage) == set(pods)
        for pod, intervals in pods.items():
            row = usage[pod]
            assert row["tasks"] == len(intervals)
            assert close(row["task_seconds"], sum(seconds(e - s) for s, e in intervals))
            busy = seconds(busy_union(intervals))
            assert close(row["busy_seconds"], busy)
            assert close(row["utilization"], busy / makespan(tasks))
            assert close(row["idle_share"], 1 - busy / makespan(tasks))
        bars = found[session].gantt.bars
        assert not found[session].gantt.downsampled and bars.height == len(ran)


async def test_stragglers_skew_retries_and_errors_equal_the_truth(
    played: tuple[Path, Simulator, Sessions]
) -> None:
    directory, _, sessions = played
    found = analysed(directory)
    retried = 0
    for session, tasks in sessions.items():
        analysis = found[session]
        by_partition: dict[str, list[SimTask]] = {}
        for task in tasks:
            if task.processing_to_end is not None:
                by_partition.setdefault(task.options.partition_id, []).append(task)
        expected, skews = set(), {}
        for partition, members in by_partition.items():
            durations = [seconds(t.processing_to_end or 0) for t in members]
            median = float(np.median(durations))
            skews[partition] = (len(members), median, max(durations), max(durations) / median)
            expected |= {t.task_id for t, d in zip(members, durations, strict=True)
                         if d > 3 * median}
        assert set(analysis.stragglers["task_id"]) == expected
        got = {r["partition_id"]: (r["tasks"], r["median"], r["max"], r["skew"])
               for r in analysis.skew.iter_rows(named=True)}
        assert got.keys() == skews.keys()
        for partition, want in skews.items():
            assert got[partition][0] == want[0]
            assert all(close(a, b) for a, b in zip(got[partition][1:], want[1:], strict=True))

        chains: dict[str, list[SimTask]] = {}
        for task in tasks:
            first = task.retry_of_ids[0] if task.retry_of_ids else task.task_id
            chains.setdefault(first, []).append(task)
        retried_chains = {k: sorted(v, key=lambda t: len(t.retry_of_ids))
                          for k, v in chains.items() if len(v) > 1}
        rows = {r["first_task_id"]: r for r in analysis.retries.iter_rows(named=True)}
        assert rows.keys() == retried_chains.keys()
        for first, attempts in retried_chains.items():
            row = rows[first]
            assert row["attempts"] == len(attempts)
            assert row["statuses"] == ">".join(t.status.name for t in attempts)
            assert row["final_task_id"] == attempts[-1].task_id
            assert close(row["retried_seconds"],
                         sum(seconds(t.processing_to_end or 0) for t in attempts[:-1]))
        retried += len(retried_chains)

        errors = Counter((t.status.name, t.output_error or t.status_message) for t in tasks
                         if t.status.name in FAILED)
        assert {(r["status"], r["message"]): r["tasks"]
                for r in analysis.errors.iter_rows(named=True)} == errors
    assert retried >= 5


async def test_comparing_two_sessions_gives_their_differences(
    played: tuple[Path, Simulator, Sessions]
) -> None:
    directory, _, sessions = played
    first, second = sorted(s for s, tasks in sessions.items()
                           if tasks[0].options.application_name == "pricing")
    frames = from_archive(directory, Selection((first, second)))
    rows = compare(frames.session(first).lazy(), frames.session(second).lazy())
    assert set(rows["partition_id"]) == {"*", "cpu"}
    for row in rows.iter_rows(named=True):
        before = stats(values(sessions[first], row["measure"]))
        after = stats(values(sessions[second], row["measure"]))
        assert close(row["baseline"], before[row["statistic"]])
        assert close(row["session"], after[row["statistic"]])
        delta = after[row["statistic"]] - before[row["statistic"]]
        assert close(row["delta_seconds"], delta, 1e-6)
        if before[row["statistic"]]:
            assert close(row["delta_percent"], 100 * delta / before[row["statistic"]], 1e-6)
        assert row["change"] == ("slower" if delta > 1e-9 else "faster" if delta < -1e-9
                                 else "same")
    assert {"slower", "faster"} <= set(rows["change"])


async def test_the_json_of_each_session_equals_the_truth(
    played: tuple[Path, Simulator, Sessions]
) -> None:
    directory, sim, sessions = played
    result = CliRunner().invoke(main, ["analyze", "--archive", str(directory), "-o", "json"])
    assert result.exit_code == 0, result.output
    objects = json.loads(result.stdout)
    assert [o["session_id"] for o in objects] == sorted(sessions)
    for summary in objects:
        tasks = sessions[summary["session_id"]]
        assert summary["tasks"] == {"count": len(tasks), "ended": len(tasks),
                                    "by_status": dict(sorted(Counter(
                                        t.status.name for t in tasks).items()))}
        for measure, got in summary["durations"].items():
            seconds_ = values(tasks, measure)
            if len(seconds_):
                assert_stats_equal(got, stats(seconds_), measure)
            else:
                assert got["count"] == 0 and got["mean"] is None
        for partition, part in summary["by_partition"].items():
            mine = [t for t in tasks if t.options.partition_id == partition]
            assert part["tasks"] == len(mine)
            assert_stats_equal(part["durations"]["creation_to_end"],
                               stats(values(mine, "creation_to_end")), partition)
        edges = true_edges(sim, tasks)
        assert summary["makespan_seconds"] == makespan(tasks)
        assert close(summary["makespan_lower_bound_seconds"], true_lower_bound(tasks, edges))
        path = true_critical_path(tasks, edges)
        assert summary["critical_path_tasks"] == len(path)
        assert summary["finished"] is True and summary["note"] is None
    assert pl.DataFrame(objects).height == len(sessions)
