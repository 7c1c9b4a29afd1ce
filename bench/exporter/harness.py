"""The exporter and the simulator as child processes, and the exporter's /metrics read back.

`serve` and `simulate` run as `armonik-observe` processes on free ports; a `Scrape` holds every
sample of one /metrics read and the monotonic time it was taken, to turn counters into rates.
"""

from __future__ import annotations

import math
import re
import time
import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from bench import common
from bench.common import BenchError, Child

HOST = "127.0.0.1"
KINDS = "new_task,task_status_update"  # what EventStreams asks for (collectors/events.py)
# Per steady task, of those two kinds: NEW_TASK, then PENDING, SUBMITTED, DISPATCHED, PROCESSING
# and COMPLETED updates.
EVENTS_PER_TASK = 6
EXPORTER_READY = "exporter:"
EVENTS = "armonik_observe_events_received_total"
RPC_COUNT = "armonik_observe_rpc_duration_seconds_count"
RPC_SUM = "armonik_observe_rpc_duration_seconds_sum"
ENDED = "armonik_tasks_ended_total"
TRACKED = "armonik_observe_tasks_tracked"
TRANSITIONS = "armonik_task_status_transitions_total"
LAG = "armonik_observe_event_lag_seconds"
DROPPED = "armonik_observe_dropped_total"


@dataclass
class Scrape:
    """One /metrics read: every sample, and the monotonic time it was taken (mid-request)."""

    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    at: float

    def total(self, name: str, **labels: str) -> float:
        """Sum of the samples called `name` whose labels include `labels` (NaN skipped)."""
        wanted = set(labels.items())
        return sum(v for (n, lab), v in self.samples.items()
                   if n == name and wanted <= set(lab) and not math.isnan(v))

    def by(self, name: str, label: str) -> dict[str, float]:
        """Samples called `name`, summed by one label."""
        out: dict[str, float] = {}
        for (n, lab), value in self.samples.items():
            if n == name:
                key = dict(lab).get(label, "")
                out[key] = out.get(key, 0.0) + value
        return out


def scrape(url: str, timeout: float = 10.0) -> Scrape:
    """Read and parse the exporter's /metrics."""
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = response.read().decode()
    at = (started + time.monotonic()) / 2
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return Scrape(samples, at)


def scrape_at(url: str, at: float) -> Scrape:
    """`scrape(url)` once the monotonic clock reaches `at`."""
    time.sleep(max(at - time.monotonic(), 0.0))
    return scrape(url)


def metrics_url(child: Child) -> str:
    """The /metrics URL from `serve`'s readiness line."""
    match = re.search(r"metrics on (\S+/metrics)", child.ready)
    if not match:
        raise BenchError(f"no metrics URL in {child.ready!r}")
    return match.group(1)


def exporter_command(endpoint: str, *options: str) -> list[str]:
    """`armonik-observe serve` against `endpoint`, metrics on a free port."""
    return common.cli_command("--log-level", "WARNING", "serve", "-e", endpoint,
                              "--listen", f"{HOST}:0", *options)


def start_exporter(endpoint: str, *options: str) -> Child:
    """`armonik-observe serve` against `endpoint`, once it prints ready."""
    return common.start_process(exporter_command(endpoint, *options), name="exporter",
                                ready_prefix=EXPORTER_READY, timeout=30)


def start_simulator(*options: str) -> tuple[Child, str]:
    """`armonik-observe simulate` on a free port: the child and its host:port."""
    port = common.free_port(HOST)
    cmd = common.cli_command("simulate", "--listen", f"{HOST}:{port}", *options)
    return common.start_process(cmd, name="simulator", port=port, timeout=30), f"{HOST}:{port}"


def first_polls_done(url: str) -> bool:
    """Whether every poller has run once (each issues one of these RPCs)."""
    rpcs = scrape(url).by(RPC_COUNT, "rpc")
    return all(rpcs.get(r, 0) >= 1 for r in ("ListSessions", "CheckHealth", "ListTasks",
                                             "CountTasksByStatus"))
