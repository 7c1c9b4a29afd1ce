"""Ingest, live: the exporter against the bare receiver on one steady stream.

`simulate --scenario steady --rate R` runs in its own process. On that simulator, one after the
other: (a) the project's bare grpcio receiver (bench.bare_receive, kinds new_task and
task_status_update: the two the exporter asks for) reads the session's stream for `seconds`;
(b) with `aio`, the same loop on grpc.aio (the exporter's transport, no processing); (c)
`armonik-observe serve --max-followed-sessions 1` follows the session, and its
armonik_observe_events_received_total is read from /metrics around a window of the same length
that opens once it has received the snapshot the server replays on subscription (bare subscribes
within a second of the session's start, so its snapshot is small; the exporter's is not, and
would flatter it). Sequential rather than all at once: two streams would double the simulator's
work per event and put three busy processes on two cores. The facts poller is parked
(--facts-interval 3600) so that the exporter's CPU is the event path's, plus the cheap 10 s
polls. CPU comes from psutil over each window. The simulator delivers ~10k events/s per stream at
best: when it limits, compare events per CPU-second.
"""

from __future__ import annotations

import time
from typing import Any

import grpc

from bench import common
from bench.bare_receive import run_bare
from bench.common import CpuSampler, per_s, wait_for
from bench.control_plane import count_tasks, running_session
from bench.exporter.harness import (
    DROPPED,
    EVENTS,
    EVENTS_PER_TASK,
    KINDS,
    TRACKED,
    metrics_url,
    scrape,
    start_exporter,
    start_simulator,
)
from bench.report import KEEPS_UP, SATURATED, Row, info_row, ratio_row

TARGET_INGEST_RATIO = 0.9  # the exporter receives at least 90% of what the bare loop does
CATCH_UP_S = 2.0  # how long the exporter may take to drain what queued during its snapshot
CAUGHT_UP_S = 0.25  # ... down to this many seconds of generation


def measure_live(rate: float, seconds: float, aio: bool) -> dict[str, Any]:
    """On one steady simulator at `rate` tasks/s: bare receiver, [bare aio], then the exporter."""
    sim, target = start_simulator("--scenario", "steady", "--rate", f"{rate:g}", "--speed", "1")
    endpoint = f"http://{target}"
    arms: dict[str, dict[str, Any]] = {}
    try:
        with grpc.insecure_channel(target) as channel:
            session = running_session(channel)
            arms["bare"] = _live_bare(channel, endpoint, session, seconds, sim.pid)
            if aio:
                arms["bare-aio"] = _live_bare(channel, endpoint, session, seconds, sim.pid,
                                              aio=True)
            arms["exporter"] = _live_exporter(channel, endpoint, session, seconds, sim.pid, rate)
    finally:
        common.stop_process(sim)
    for figures in arms.values():
        figures["limit"] = arm_limit(figures)
    bare, exporter = arms["bare"], arms["exporter"]
    return {
        "rate_tasks_per_s": rate,
        "offered_events_per_s": rate * EVENTS_PER_TASK,
        "arms": arms,
        "ratio_events_per_s": round(exporter["events_per_s"] / bare["events_per_s"], 3),
        "ratio_events_per_cpu_s": round(
            exporter["events_per_cpu_s"] / bare["events_per_cpu_s"], 3),
    }


def _arm_figures(events: float, wall: float, cpu: float, sim_cpu: float, busy: float,
                 generated_events_per_s: float) -> dict[str, Any]:
    return {
        "events": int(events),
        "wall_s": round(wall, 3),
        "events_per_s": per_s(events, wall),
        "cpu_s": round(cpu, 3),
        "cpu_share": round(cpu / wall, 3),
        "events_per_cpu_s": per_s(events, max(cpu, 1e-9)),
        "generated_events_per_s": round(generated_events_per_s, 1),
        "simulator_cpu_share": round(sim_cpu / wall, 3),
        "other_cpu_share": round(max(busy - sim_cpu - cpu, 0.0) / wall, 3),
    }


def _live_bare(channel: grpc.Channel, endpoint: str, session: str, seconds: float,
               sim_pid: int, aio: bool = False) -> dict[str, Any]:
    """The bare receiver (sync grpcio, or grpc.aio) on the stream for `seconds`."""
    tasks0, counted0 = count_tasks(channel, session)
    with CpuSampler(sim_pid) as sim_cpu, CpuSampler(None) as machine:
        report, exited = run_bare(endpoint, session, seconds, kinds=KINDS, aio=aio)
    tasks1, counted1 = count_tasks(channel, session)
    wall = float(report["wall_s"])
    figures = _arm_figures(
        report["events"], wall, float(report["cpu_s"]),
        sim_cpu.cpu_between(exited - wall, exited), machine.cpu_between(exited - wall, exited),
        (tasks1 - tasks0) / (counted1 - counted0) * EVENTS_PER_TASK)
    # bare counts from its subscription: its snapshot (a NEW_TASK per task then) is included.
    figures["snapshot_share_at_least"] = round(tasks0 / max(report["events"], 1), 3)
    return figures


def _live_exporter(channel: grpc.Channel, endpoint: str, session: str, seconds: float,
                   sim_pid: int, rate: float) -> dict[str, Any]:
    child = start_exporter(endpoint, "--max-followed-sessions", "1", "--facts-interval", "3600")
    try:
        url = metrics_url(child)
        with CpuSampler(child.pid) as exp_cpu, CpuSampler(sim_pid) as sim_cpu, \
                CpuSampler(None) as machine:
            wait_for(lambda: scrape(url).total(EVENTS) > 0, 30, "the exporter's first event")
            snapshot, _ = count_tasks(channel, session)  # >= the tasks it replays
            wait_for(lambda: scrape(url).total(EVENTS, kind="new_task") >= snapshot, 60,
                     "the exporter to receive its snapshot")
            # Live events queued while the snapshot was sent: drain them before the window,
            # or its rate would be the catch-up rate, not the live one (unless it never can).
            backlog0 = _backlog(channel, session, url, snapshot)
            deadline = time.monotonic() + CATCH_UP_S
            while backlog0 > CAUGHT_UP_S * rate * EVENTS_PER_TASK and \
                    time.monotonic() < deadline:
                time.sleep(0.25)
                backlog0 = _backlog(channel, session, url, snapshot)
            tasks0, counted0 = count_tasks(channel, session)
            before = scrape(url)
            time.sleep(seconds)
            after = scrape(url)
            tasks1, counted1 = count_tasks(channel, session)
            backlog1 = _backlog(channel, session, url, snapshot)
    finally:
        common.stop_process(child)
    window = (before.at, after.at)
    figures = _arm_figures(
        after.total(EVENTS) - before.total(EVENTS), after.at - before.at,
        exp_cpu.cpu_between(*window), sim_cpu.cpu_between(*window),
        machine.cpu_between(*window), (tasks1 - tasks0) / (counted1 - counted0) * EVENTS_PER_TASK)
    figures["snapshot_events_skipped"] = snapshot
    figures["backlog_at_window_start"] = backlog0
    figures["backlog_at_window_end"] = backlog1
    figures["caught_up_before_window"] = backlog0 <= CAUGHT_UP_S * rate * EVENTS_PER_TASK
    figures["tasks_tracked"] = int(after.total(TRACKED))
    figures["dropped"] = after.by(DROPPED, "reason")
    return figures


def _backlog(channel: grpc.Channel, session: str, url: str, snapshot: int) -> int:
    """Events the stream still owes the exporter: a NEW_TASK per task of its snapshot (about
    `snapshot`), then 6 per task created since, minus what it received."""
    tasks, _ = count_tasks(channel, session)
    owed = snapshot + EVENTS_PER_TASK * (tasks - snapshot)
    return max(int(owed - scrape(url).total(EVENTS)), 0)


def arm_limit(figures: dict[str, Any]) -> str:
    """What limited one receiver: nothing, the simulator's CPU, its own, or the machine."""
    if figures.get("caught_up_before_window") is False:
        prefix = "behind (backlog {:,} -> {:,} ev); ".format(
            figures["backlog_at_window_start"], figures["backlog_at_window_end"])
        return prefix + _limit(figures, check_keeps_up=False)
    return _limit(figures)


def _limit(figures: dict[str, Any], check_keeps_up: bool = True) -> str:
    if check_keeps_up and figures["events_per_s"] >= KEEPS_UP * figures["generated_events_per_s"]:
        return "keeps up"
    if figures["simulator_cpu_share"] >= SATURATED:
        return "simulator CPU"
    if figures["cpu_share"] >= SATURATED:
        return "receiver CPU"
    used = figures["simulator_cpu_share"] + figures["cpu_share"] + figures["other_cpu_share"]
    if used >= SATURATED * 2:
        return f"machine busy (others {figures['other_cpu_share']:.2f} core)"
    return "neither CPU-bound (per-message latency)"


def live_rows(runs: list[dict[str, Any]]) -> list[Row]:
    """Rows for the live ingest runs."""
    return [row for run in runs for row in _run_rows(run)]


def _run_rows(run: dict[str, Any]) -> list[Row]:
    tag = f"live @{run['rate_tasks_per_s']:g}/s"
    arms = run["arms"]
    generated = arms["exporter"]["generated_events_per_s"]
    rows = [ratio_row(f"{tag} generated (2 kinds)", generated, run["offered_events_per_s"],
                      "ev/s", ok_at=KEEPS_UP,
                      means="new_task + task_status_update events/s the simulator created "
                            "during the exporter's window; target: the rate offered x 6")]
    for name, arm in arms.items():
        rows += [
            info_row(f"{tag} {name} received", arm["events_per_s"], "ev/s",
                     means=f"events/s the {name} receiver got over its window",
                     note=f"limit: {arm['limit']}"),
            info_row(f"{tag} {name} ev/CPU-s", arm["events_per_cpu_s"], "ev/s",
                     means=f"events the {name} receiver got per CPU-second it spent",
                     note=f"CPU {arm['cpu_share']:.2f}, simulator "
                          f"{arm['simulator_cpu_share']:.2f}, others "
                          f"{arm['other_cpu_share']:.2f}"),
        ]
    rows += [
        ratio_row(f"{tag} exporter/bare ev/s", run["ratio_events_per_s"], TARGET_INGEST_RATIO,
                  means="exporter events/s over the bare loop's, same simulator, same run"),
        ratio_row(f"{tag} exporter/bare ev/CPU-s", run["ratio_events_per_cpu_s"],
                  TARGET_INGEST_RATIO, means="exporter events per CPU-second over the bare "
                  "loop's: its processing cost, robust when the simulator limits"),
    ]
    if "bare-aio" in arms:
        aio = arms["bare-aio"]["events_per_cpu_s"]
        rows.append(info_row(f"{tag} exporter/bare-aio ev/CPU-s",
                             round(arms["exporter"]["events_per_cpu_s"] / aio, 3),
                             means="the same against a bare grpc.aio loop (same transport)"))
    return rows
