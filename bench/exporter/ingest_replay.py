"""Ingest, replay: how long each receiver takes to read a finished session's snapshot.

A finished session of `tasks` tasks (bench.serve_finished) replays one NEW_TASK per task on
subscription, as fast as the server sends: the time the bare sync grpcio loop
(bench.bare_receive), with `aio` the bare grpc.aio loop, and the exporter's EventStreams and
pipeline (bench.exporter.receiver) take to receive all of them, each in a process of its own.
The arms alternate `rounds` times; the ratios are medians of each round's.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.bare_receive import run_bare
from bench.common import Child, CpuSampler, per_s
from bench.exporter.harness import KINDS
from bench.exporter.ingest_live import TARGET_INGEST_RATIO
from bench.exporter.receiver import run_receiver
from bench.report import Row, info_row, ratio_row

REPLAY_CAP_S = 25.0  # a receiver stops there if it has not got every event (busy machine)


def measure_replay(server: Child, info: dict[str, Any], kinds: list[str],
                   rounds: int) -> dict[str, Any]:
    """Each receiver in turn reads the finished session's snapshot replay to its end, `rounds`
    times alternated; ratios are medians of each round's (the machine's speed drifts)."""
    count = int(info["tasks"])
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for round_ in range(rounds):
        for kind in kinds:
            print(f"  replay {round_ + 1}/{rounds}: {kind} receiving {count:,} events ...",
                  flush=True)
            runs[kind].append(_replay_arm(server, info, kind))
    arms = {kind: _median_run(figures) for kind, figures in runs.items()}
    result: dict[str, Any] = {"tasks": count, "rounds": rounds, "arms": arms, "runs": runs}
    if "bare" in runs and "exporter" in runs:
        pairs = list(zip(runs["bare"], runs["exporter"], strict=True))
        for key, name in (("ratio_time", "wall_s"), ("ratio_events_per_s", "events_per_s"),
                          ("ratio_events_per_cpu_s", "events_per_cpu_s")):
            ratios = sorted(e[name] / b[name] for b, e in pairs)
            result[key] = round(statistics.median(ratios), 3)
            result[f"{key}_range"] = [round(ratios[0], 3), round(ratios[-1], 3)]
    return result


def _replay_arm(server: Child, info: dict[str, Any], kind: str) -> dict[str, Any]:
    count = int(info["tasks"])
    endpoint, session = info["endpoint"], info["sessions"][0]
    with CpuSampler(server.pid) as sim_cpu, CpuSampler(None) as machine:
        if kind == "exporter":
            report, exited = run_receiver(endpoint, session, count, REPLAY_CAP_S,
                                          timeout=REPLAY_CAP_S + 60)
        else:
            report, exited = run_bare(endpoint, session, REPLAY_CAP_S, count=count, kinds=KINDS,
                                      aio=kind == "bare-aio", timeout=60)
    wall, cpu = float(report["wall_s"]), float(report["cpu_s"])
    server_cpu = sim_cpu.cpu_between(exited - wall, exited)
    busy = machine.cpu_between(exited - wall, exited)
    return {
        **report,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "events_per_s": per_s(report["events"], wall),
        "events_per_cpu_s": per_s(report["events"], max(cpu, 1e-9)),
        "cpu_share": round(cpu / wall, 3),
        "server_cpu_share": round(server_cpu / wall, 3),
        "other_cpu_share": round(max(busy - server_cpu - cpu, 0.0) / wall, 3),
        "complete": report["events"] >= count,
    }


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median events per CPU-second (its figures stay consistent)."""
    ordered = sorted(runs, key=lambda run: run["events_per_cpu_s"])
    return {**ordered[(len(ordered) - 1) // 2], "complete": all(r["complete"] for r in runs)}


def replay_rows(result: dict[str, Any]) -> list[Row]:
    """Rows for the snapshot replay: each arm's median round, then the ratios."""
    rows: list[Row] = []
    tag = f"replay {result['tasks'] // 1000}k"
    for kind, arm in result["arms"].items():
        rows += [
            Row(f"{tag}: {kind} time", arm["wall_s"], "s", None,
                "" if arm["complete"] else "CAPPED",
                f"seconds the {kind} receiver took to get the whole snapshot (median round)",
                ("" if arm["complete"] else f"stopped at {arm['events']:,} events; ")
                + f"{arm['events_per_s']:,.0f} ev/s; CPU {arm['cpu_share']:.2f}, "
                  f"server {arm['server_cpu_share']:.2f}, others {arm['other_cpu_share']:.2f}"),
            info_row(f"{tag}: {kind} ev/CPU-s", arm["events_per_cpu_s"], "ev/s",
                     means=f"events the {kind} receiver got per CPU-second it spent"),
        ]
    if "ratio_events_per_s" in result:
        for label, key in (("ev/s", "ratio_events_per_s"), ("ev/CPU-s", "ratio_events_per_cpu_s")):
            low, high = result[f"{key}_range"]
            rows.append(ratio_row(
                f"{tag}: exporter/bare {label}", result[key], TARGET_INGEST_RATIO,
                means=f"exporter {label} over the bare loop's, median of the rounds' ratios",
                note=f"median of {result['rounds']}, {low:g} to {high:g}"))
    if "bare-aio" in result["arms"] and "exporter" in result["arms"]:
        arms = result["arms"]
        rows.append(info_row(f"{tag}: exporter/bare-aio ev/CPU-s", round(
            arms["exporter"]["events_per_cpu_s"] / arms["bare-aio"]["events_per_cpu_s"], 3),
            means="the same against a bare grpc.aio loop (same transport)"))
    return rows
