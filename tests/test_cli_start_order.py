"""`serve` started before the control plane, as a Deployment often is (issue 9).

The exporter is a real `armonik-observe serve` process; the control plane, started seconds
later on the port it was told, is the simulator in this process, so that its ground truth is at
hand. Every task of the burst scenario (12,000) is created and ended after the exporter started.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest
from exporter_harness import wait_until
from prometheus_client.parser import text_string_to_metric_families
from test_archive_truth import assert_tasks_equal_the_truth, ended, scalar
from test_exporter_faults import free_port

from armonik_observe.simulator.builtin import builtin_scenario
from armonik_observe.simulator.faults import FaultPlan, RpcFaults
from armonik_observe.simulator.server import Simulator

BURST_TASKS = 12_000
FAST_POLLS = ("--session-interval", "1", "--count-interval", "1", "--health-interval", "1",
              "--facts-interval", "0.5", "--archive-flush-interval", "0.5")


@contextmanager
def serve(endpoint: str, archive: Path, log: IO[str]) -> Iterator[str]:
    """`serve` in a subprocess; yields its base URL and stops it with SIGINT (exit 0)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARMONIK_OBSERVE_", "AK"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "armonik_observe.cli", "--log-level", "WARNING", "serve",
         "-e", endpoint, "--listen", "127.0.0.1:0", "--archive", str(archive), *FAST_POLLS],
        stdout=subprocess.PIPE, stderr=log, text=True, env={**env, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert banner.startswith("exporter: watching"), banner
        yield banner.rsplit("metrics on ", 1)[1].strip().removesuffix("/metrics")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()


def get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as error:  # /health answers 503 when not ready
        return str(error.read().decode())


def totals(base: str) -> dict[str, float]:
    """Sums over every label set of the ended-task counter and histogram counts."""
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(get(base + "/metrics")):
        for sample in family.samples:
            if sample.name == "armonik_tasks_ended_total" or sample.name.endswith(
                    "_to_end_seconds_count"):
                sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    return sums


def until(check: Callable[[], bool], within: float) -> None:
    """Call `check` until it holds (bounded: it reads another process)."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not done within {within}s")
        time.sleep(0.1)


async def poll_failed(base: str) -> None:
    """Wait until the exporter reports that the control plane does not answer."""
    await asyncio.to_thread(until, lambda: "last failure" in get(base + "/health"), 30)


def rpc_calls(base: str, rpc: str, code: str | None = None) -> float:
    """Calls of one RPC the exporter made, with the status `code` or whatever their outcome."""
    return sum(sample.value for family in text_string_to_metric_families(get(base + "/metrics"))
               for sample in family.samples
               if sample.name == "armonik_observe_rpc_duration_seconds_count"
               and sample.labels["rpc"] == rpc and code in (None, sample.labels["code"]))


def expected_totals() -> dict[str, float]:
    return {name: float(BURST_TASKS) for name in (
        "armonik_tasks_ended_total", "armonik_task_creation_to_end_seconds_count",
        "armonik_task_processing_to_end_seconds_count",
        "armonik_task_received_to_end_seconds_count")}


FAULTS = {
    "clean": FaultPlan(),
    "cuts": FaultPlan(cut_rate=0.01, rpcs={"ListTasksDetailed": RpcFaults(unavailable=0.2),
                                           "ListSessions": RpcFaults(unavailable=0.2)}),
}


@pytest.mark.parametrize(("faults", "restart"), [("clean", False), ("cuts", False),
                                                 ("clean", True)])
async def test_serve_started_first_counts_and_archives_every_task(
    tmp_path: Path, faults: str, restart: bool
) -> None:
    directory, port = tmp_path / "archive", free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with (tmp_path / "serve.log").open("w") as log:
        if restart:  # started, then stopped, before the control plane ever answered
            with serve(endpoint, directory, log) as first:
                await poll_failed(first)
        with serve(endpoint, directory, log) as base:
            await poll_failed(base)
            sim = Simulator(builtin_scenario("burst"), listen=f"127.0.0.1:{port}", seed=5,
                            speed=30, faults=FAULTS[faults], record_events=False)
            async with sim:
                await wait_until(lambda: sim.scheduler.next_due() is None, within=120)
                truth = ended(sim)
                assert len(truth) == len(sim.true_tasks()) == BURST_TASKS
                want = expected_totals()
                await asyncio.to_thread(until, lambda: totals(base) == want, 90)
                # Three more passes over the overlap window count nothing twice.
                passes = rpc_calls(base, "ListTasksDetailed") + 3
                await asyncio.to_thread(
                    until, lambda: rpc_calls(base, "ListTasksDetailed") >= passes, 30)
                assert totals(base) == want
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
    assert scalar(directory, "SELECT count(*) FROM tasks") == BURST_TASKS
    assert_tasks_equal_the_truth(directory, truth)


async def test_a_restarted_exporter_counts_nothing_it_archived_before(tmp_path: Path) -> None:
    """A restart re-reads the overlap below the archive's watermark: what the archive holds
    there was counted by the run before, and a Prometheus increase() across the restart would
    count it twice."""
    directory, port = tmp_path / "archive", free_port()
    endpoint = f"http://127.0.0.1:{port}"
    sim = Simulator(builtin_scenario("burst"), listen=f"127.0.0.1:{port}", seed=5, speed=30,
                    record_events=False)
    with (tmp_path / "serve.log").open("w") as log:
        async with sim:
            with serve(endpoint, directory, log) as base:
                await wait_until(lambda: sim.scheduler.next_due() is None, within=120)
                await asyncio.to_thread(until, lambda: totals(base) == expected_totals(), 90)
            with serve(endpoint, directory, log) as again:
                # Three passes over the overlap window (the burst's last wave ended in it).
                await asyncio.to_thread(
                    until, lambda: rpc_calls(again, "ListTasksDetailed", "OK") >= 3, 30)
                assert totals(again) == {}
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
    assert scalar(directory, "SELECT count(*) FROM tasks_raw") == BURST_TASKS
    assert_tasks_equal_the_truth(directory, ended(sim))
