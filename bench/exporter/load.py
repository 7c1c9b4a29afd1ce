"""The busiest session: a default exporter on `simulate --scenario steady --rate R`.

Over `seconds` (plus PASS_SLACK_S) from just after the first polls: control-plane calls per
minute, events received against generated (tasks counted with CountTasksByStatus x 6 events),
the stream backlog at the end, tasks tracked, the event-lag gauge, and tasks_ended_total growth
against the task rate; the exporter's and the simulator's CPU share.
"""

from __future__ import annotations

import time
from typing import Any

import grpc

from bench import common
from bench.common import CpuSampler, per_s, wait_for
from bench.control_plane import count_tasks, running_session
from bench.exporter.calls import PASS_SLACK_S, calls_per_minute, calls_rows
from bench.exporter.harness import (
    DROPPED,
    ENDED,
    EVENTS,
    EVENTS_PER_TASK,
    LAG,
    RPC_COUNT,
    TRACKED,
    TRANSITIONS,
    first_polls_done,
    metrics_url,
    scrape,
    start_exporter,
    start_simulator,
)
from bench.report import Row, info_row, other_row, ratio_row

FACTS_PAGE = 1000  # TaskFactsPoller's page size


def measure_load(rate: float, seconds: float, step: float = 5.0) -> dict[str, Any]:
    """A default exporter on a steady simulator at `rate`: calls/min and how it keeps up."""
    sim, target = start_simulator("--scenario", "steady", "--rate", f"{rate:g}", "--speed", "1")
    try:
        with grpc.insecure_channel(target) as channel:
            session = running_session(channel)
            exporter = start_exporter(f"http://{target}")
            try:
                url = metrics_url(exporter)
                with CpuSampler(exporter.pid) as exp_cpu, CpuSampler(sim.pid) as sim_cpu, \
                        CpuSampler(None) as machine:
                    wait_for(lambda: scrape(url).total(EVENTS) > 0, 30, "the first event")
                    subscribed, _ = count_tasks(channel, session)  # >= its snapshot
                    wait_for(lambda: first_polls_done(url), 30, "the first polls")
                    tasks0, counted0 = count_tasks(channel, session)
                    scrapes = [scrape(url)]
                    deadline = scrapes[0].at + seconds + PASS_SLACK_S
                    while (now := time.monotonic()) < deadline:
                        time.sleep(min(step, deadline - now))
                        scrapes.append(scrape(url))
                    tasks1, counted1 = count_tasks(channel, session)
            finally:
                common.stop_process(exporter)
    finally:
        common.stop_process(sim)
    first, last = scrapes[0], scrapes[-1]
    wall = last.at - first.at
    cpu = exp_cpu.cpu_between(first.at, last.at)
    sim_share = sim_cpu.cpu_between(first.at, last.at) / wall
    others = machine.cpu_between(first.at, last.at) / wall - sim_share - cpu / wall
    generated_tasks = (tasks1 - tasks0) / (counted1 - counted0)
    events = last.total(EVENTS) - first.total(EVENTS)
    # What the stream owes by the end: a NEW_TASK per task of its snapshot (at most
    # `subscribed`), then 6 events per task created since.
    owed = subscribed + EVENTS_PER_TASK * (tasks1 - subscribed)
    backlog = max(owed - last.total(EVENTS), 0)
    lag = {dict(lab).get("session", ""): v for (n, lab), v in last.samples.items() if n == LAG}
    return {
        "rate_tasks_per_s": rate,
        "window_s": round(wall, 1),
        "generated_tasks_per_s": round(generated_tasks, 1),
        "generated_events_per_s": round(generated_tasks * EVENTS_PER_TASK, 1),
        "events_per_s": per_s(events, wall),
        "events_vs_generated": round(events / wall / (generated_tasks * EVENTS_PER_TASK), 3),
        "backlog_events_at_end": int(backlog),
        "behind_s_at_end": round(backlog / (generated_tasks * EVENTS_PER_TASK), 1),
        "tasks_tracked_at_end": int(last.total(TRACKED)),
        "event_lag_seconds": lag,
        "tasks_ended_per_s": per_s(last.total(ENDED) - first.total(ENDED), wall),
        "tasks_ended_total_at_end": int(last.total(ENDED)),
        "tasks_in_session_at_end": tasks1,
        "transitions_per_s": per_s(last.total(TRANSITIONS) - first.total(TRANSITIONS), wall),
        # Every ListTasks page but a pass's last is full: rows read, at most, per task counted.
        "facts_rows_read_per_end_at_most": round(
            (last.by(RPC_COUNT, "rpc").get("ListTasks", 0)
             - first.by(RPC_COUNT, "rpc").get("ListTasks", 0)) * FACTS_PAGE
            / max(last.total(ENDED) - first.total(ENDED), 1), 2),
        "dropped": last.by(DROPPED, "reason"),
        "exporter_cpu_share": round(cpu / wall, 3),
        "simulator_cpu_share": round(sim_share, 3),
        "other_cpu_share": round(max(others, 0.0), 3),
        "calls": calls_per_minute(first, last, seconds),
        "timeline": [{
            "t_s": round(s.at - first.at, 1),
            "events": int(s.total(EVENTS)),
            "tasks_tracked": int(s.total(TRACKED)),
            "tasks_ended_total": int(s.total(ENDED)),
            "list_tasks_calls": int(s.by(RPC_COUNT, "rpc").get("ListTasks", 0)),
        } for s in scrapes],
    }


def load_rows(result: dict[str, Any]) -> list[Row]:
    """Rows for the busiest-session run: calls per minute, then how the exporter keeps up."""
    tag = f"busiest @{result['rate_tasks_per_s']:g}/s"
    lag = result["event_lag_seconds"]
    rows = calls_rows(f"load @{result['rate_tasks_per_s']:g}/s", result["calls"])
    return [*rows,
        info_row(f"{tag} generated (2 kinds)", result["generated_events_per_s"], "ev/s",
                 means="new_task + task_status_update events/s the simulator created",
                 note=f"{result['generated_tasks_per_s']:,.0f} tasks/s"),
        ratio_row(f"{tag} received", result["events_per_s"], result["generated_events_per_s"],
                  "ev/s", means="events/s the exporter received; target: all generated"),
        info_row(f"{tag} stream backlog at end", result["backlog_events_at_end"], "ev",
                 means="events the stream still owed the exporter when the window closed",
                 note=f"~{result['behind_s_at_end']:g}s of generation behind"),
        Row(f"{tag} event_lag_seconds", max(lag.values()) if lag else "empty",
            "s" if lag else "", None, "", "the exporter's own event-lag gauge at the end",
            "" if lag else "family exposed, no sample"),
        info_row(f"{tag} tasks tracked at end", result["tasks_tracked_at_end"],
                 means="in-flight tasks the exporter's tracker held"),
        ratio_row(f"{tag} tasks_ended_total growth", result["tasks_ended_per_s"],
                  result["generated_tasks_per_s"], "/s",
                  means="tasks counted as ended per second; target: the task rate"),
        info_row(f"{tag} facts: ListTasks rows read/end",
                 result["facts_rows_read_per_end_at_most"],
                 means="ListTasks rows read per ended task, at most "
                       "(calls x 1000 / tasks_ended_total growth)"),
        info_row(f"{tag} exporter CPU share", result["exporter_cpu_share"],
                 means="exporter CPU seconds / wall seconds",
                 note=f"simulator {result['simulator_cpu_share']:.2f}"),
        other_row(f"{tag} other processes' CPU", result["other_cpu_share"]),
    ]
