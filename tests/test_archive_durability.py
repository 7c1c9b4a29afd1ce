"""The archive survives its writer: a SIGKILLed `serve` leaves only readable segments and a new
one completes the archive; readers run alongside the writer without failing or going back."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pyarrow.parquet as pq
import pytest
from armonik.protogen.client.tasks_service_pb2_grpc import TasksStub
from armonik.protogen.common import sort_direction_pb2 as direction
from armonik.protogen.common import tasks_common_pb2 as tasks_pb
from armonik.protogen.common import tasks_fields_pb2 as task_fields
from exporter_harness import archive_of, exporter_for, settle
from test_archive_truth import (
    MIXED,
    advance,
    archive_settings,
    assert_tasks_equal_the_truth,
    catch_up,
    ended,
    run_to_end,
)
from test_cli_serve import CLI, clean_env, launch_simulator

from armonik_observe import archive
from armonik_observe.archive import layout
from armonik_observe.collectors import requests
from armonik_observe.simulator.scenario import scenario_from_dict

WAIT_S = 30.0
POLL_S = 0.1

# -- a simulator and exporters as separate processes ------------------------------------------


@pytest.fixture
def simulator() -> Iterator[str]:
    """The dag scenario in a simulator subprocess; yields its host:port.

    At x0.4 its 870 tasks end over about 26 s: long enough to kill an exporter mid-run even when
    process start-up is slow and the archive's lowest-priority threads are starved (a loaded
    machine: the kill came 3.5 to 7.3 s in at x0.6), and for tasks to end while no exporter runs.
    """
    process, endpoint = launch_simulator("0.4")
    try:
        yield endpoint.removeprefix("http://")
    finally:
        process.kill()
        process.wait(timeout=WAIT_S)


def start_serve(endpoint: str, directory: Path) -> subprocess.Popen[str]:
    """`serve --archive` polling every half second; returns once its banner is printed."""
    process = subprocess.Popen(
        [*CLI, "--log-level", "WARNING", "serve", "-e", f"http://{endpoint}",
         "--listen", "127.0.0.1:0", "--archive", str(directory),
         "--archive-flush-interval", "0.5", "--facts-interval", "0.5",
         "--session-interval", "0.5", "--count-interval", "0.5", "--health-interval", "0.5",
         # Tasks ended before this exporter started count too (a fresh archive only).
         "--backfill", "3600"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(),
    )
    assert process.stdout is not None
    banner = process.stdout.readline()
    assert banner.startswith("exporter: watching"), banner + process.communicate()[1]
    return process


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    """Poll `condition` until it holds (bounded: other processes are involved)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(POLL_S)
    raise AssertionError(f"timed out waiting for {what}")


def archived_tasks(directory: Path) -> int:
    if not layout.is_archive(directory):
        return 0
    count: int = archive.open(directory).query("SELECT count(*) FROM tasks")[0][0]
    return count


_ENDED_AT = task_fields.TaskField(task_summary_field=task_fields.TaskSummaryField(
    field=task_fields.TASK_SUMMARY_ENUM_FIELD_ENDED_AT))


def all_tasks_request() -> Any:
    """Every task, total only."""
    sort = tasks_pb.ListTasksRequest.Sort(field=_ENDED_AT, direction=direction.SORT_DIRECTION_ASC)
    return tasks_pb.ListTasksRequest(page=0, page_size=0, sort=sort)


def truth_totals(endpoint: str) -> tuple[int, int]:
    """(tasks, ended tasks) as the simulator's ListTasks totals report them."""
    with grpc.insecure_channel(endpoint) as channel:
        stub = TasksStub(channel)
        every = stub.ListTasks(all_tasks_request(), timeout=10).total
        ended_ = stub.ListTasks(requests.list_tasks_ended_since(0, 0, 0), timeout=10).total
    return every, ended_


def truth_ended_ids(endpoint: str) -> list[str]:
    ids: list[str] = []
    with grpc.insecure_channel(endpoint) as channel:
        stub = TasksStub(channel)
        page = 0
        while True:
            reply = stub.ListTasks(requests.list_tasks_ended_since(0, page, 1000), timeout=10)
            ids += [task.id for task in reply.tasks]
            page += 1
            if len(ids) >= reply.total or not reply.tasks:
                return ids


def segments(directory: Path) -> list[Path]:
    return sorted(directory.rglob(f"*{layout.SEGMENT_SUFFIX}"))


def test_a_killed_exporter_leaves_a_readable_archive_that_a_new_one_completes(
    simulator: str, tmp_path: Path
) -> None:
    directory = tmp_path / "archive"
    first = start_serve(simulator, directory)
    try:
        wait_for(lambda: archived_tasks(directory) > 0, "the first task rows")
        # Right after a flush made its segments visible: a kill between two flushes (a kill
        # inside a flush is test_a_kill_between_two_segments_of_one_flush_loses_no_task).
        written = len(segments(directory))
        wait_for(lambda: len(segments(directory)) > written, "a later flush")
        os.kill(first.pid, signal.SIGKILL)
        assert first.wait(timeout=WAIT_S) == -signal.SIGKILL
    finally:
        first.kill()
        first.communicate()
    every, ended_ = truth_totals(simulator)
    assert ended_ < every, "the scenario ended before the kill: nothing left to test"

    files = segments(directory)
    assert files and all(path.name.endswith(".parquet") for path in files)
    rows = {path: pq.read_table(path).num_rows for path in files}
    assert all(count > 0 for count in rows.values())
    opened = archive.open(directory)
    before = opened.query("SELECT count(*), count(DISTINCT task_id) FROM tasks")[0]
    assert before[0] == before[1] > 0
    assert opened.query("SELECT count(*) FROM tasks_raw")[0][0] == sum(
        count for path, count in rows.items() if path.parts[-3] == "tasks")
    for view in ("events", "sessions", "results", "task_counts", "health"):
        opened.query(f"SELECT count(*) FROM {view}")
    assert opened.warnings == []
    assert opened.watermark_us() is not None

    second = start_serve(simulator, directory)
    try:
        wait_for(lambda: len(set(truth_totals(simulator))) == 1, "the scenario to end", 2 * WAIT_S)
        every, ended_ = truth_totals(simulator)
        wait_for(lambda: archived_tasks(directory) >= ended_, "every ended task archived")
    finally:  # stopping flushes what is buffered: nothing else may appear
        second.send_signal(signal.SIGINT)
        try:
            assert second.wait(timeout=WAIT_S) == 0
        finally:
            second.kill()
            stderr = second.communicate()[1]
    assert "Traceback" not in stderr

    opened = archive.open(directory)
    count, distinct = opened.query("SELECT count(*), count(DISTINCT task_id) FROM tasks")[0]
    assert count == distinct == ended_ == every
    archived_ids = {row[0] for row in opened.query("SELECT task_id FROM tasks")}
    assert archived_ids == set(truth_ended_ids(simulator))
    assert opened.warnings == []


# -- a kill inside a flush --------------------------------------------------------------------

# Two sessions whose tasks end interleaved, so one flush holds tasks of both.
INTERLEAVED = scenario_from_dict({
    "name": "interleaved",
    "seed": 4,
    "partitions": [{"id": "cpu", "pods": 4}, {"id": "gpu", "pods": 4}],
    "sessions": [
        {"name": "a", "partition": "cpu", "graph": {"kind": "bag", "tasks": 40},
         "profile": {"processing": {"kind": "exponential", "mean": 1}}},
        {"name": "b", "partition": "gpu", "graph": {"kind": "bag", "tasks": 40},
         "profile": {"processing": {"kind": "exponential", "mean": 1}}},
    ],
})


async def test_a_kill_between_two_segments_of_one_flush_loses_no_task(
    manual_sim: Any, tmp_path: Path
) -> None:
    directory = tmp_path / "archive"
    settings = {**archive_settings(directory), "archive_flush_interval": 3600.0}
    async with manual_sim(INTERLEAVED) as (sim, _):
        async with exporter_for(sim, **settings) as first:
            await settle(first, 1)
            await advance(sim, first, 2)
            await archive_of(first).flush()
            before = set(segments(directory))
            await advance(sim, first, 3)
            await archive_of(first).flush()  # one flush with tasks of both sessions
            flushed = [path for path in segments(directory) if path not in before]

        # The state a SIGKILL leaves right after the flush renamed its first task segment:
        # the segments it wrote after that one, and all the clean stop wrote, do not exist.
        task_segments = [path for path in flushed if path.parts[-3] == "tasks"]
        assert len({path.parent for path in task_segments}) == 2
        killed_at = min(task_segments, key=lambda path: path.name)
        for path in set(segments(directory)) - before:
            if path.name > killed_at.name:
                path.unlink()

        watermark = archive.open(directory).watermark_us()
        archived = {row[0] for row in archive.open(directory).query("SELECT task_id FROM tasks")}
        lost = [t for t in ended(sim) if t.task_id not in archived]
        assert watermark is not None and lost
        assert min(t.ended_at or 0 for t in lost) < watermark  # the flush interleaved them

        async with exporter_for(sim, **archive_settings(directory)) as second:
            await run_to_end(sim, second)
            await catch_up(second)
        final = {row[0] for row in archive.open(directory).query("SELECT task_id FROM tasks")}
        assert [t.task_id for t in lost if t.task_id not in final] == []
        assert_tasks_equal_the_truth(directory, ended(sim))


# -- a reader alongside the writer ------------------------------------------------------------


async def test_a_reader_in_another_thread_never_fails_nor_goes_back(
    manual_sim: Any, tmp_path: Path
) -> None:
    directory = tmp_path / "archive"
    seen: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def read_repeatedly() -> None:
        while True:
            last = done.is_set()  # a read begun after the last flush must see everything
            try:
                opened = archive.open(directory)  # a new snapshot every time
                seen.append(opened.query("SELECT count(*) FROM tasks")[0][0])
            except Exception as error:  # every failure is a test failure, reported below
                errors.append(error)
                return
            if last:
                return
            time.sleep(0.005)  # leave the event loop some of the GIL

    settings = {**archive_settings(directory), "archive_flush_interval": 0.05}
    async with manual_sim(MIXED) as (sim, _), exporter_for(sim, **settings) as exporter:
        thread = threading.Thread(target=read_repeatedly)
        thread.start()
        try:
            await settle(exporter, 1)
            await run_to_end(sim, exporter)
            await catch_up(exporter)
        finally:
            done.set()
            await asyncio_to_thread_join(thread)
        truth = ended(sim)
    assert not errors, errors[0]
    assert seen == sorted(seen), "a later read saw fewer tasks"
    assert seen[-1] == len(truth)
    assert len(set(seen) - {0, len(truth)}) >= 3  # the reads ran while the archive grew



async def asyncio_to_thread_join(thread: threading.Thread) -> None:
    await asyncio.to_thread(thread.join, WAIT_S)
    assert not thread.is_alive()
