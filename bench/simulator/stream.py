"""One GetEvents stream of `simulate --scenario steady --rate R`, read by the bare receiver.

The simulator runs as its own process; bench.bare_receive reads the session's stream (every
kind) for `seconds`. Per rate: offered events/s (R x 9 events per task), generated events/s
(tasks the simulator actually created in the window x 9), delivered events/s (what the receiver
got), both processes' CPU share (CPU seconds / wall seconds) and what limits delivery.
Target: a bare Python client takes ~25k messages/s; the simulator must not be the bottleneck.
"""

from __future__ import annotations

from typing import Any

import grpc
import psutil

from bench import common
from bench.bare_receive import run_bare
from bench.common import CpuSampler
from bench.control_plane import count_tasks, running_session
from bench.report import KEEPS_UP, SATURATED, Row, cpu_row, info_row, other_row, ratio_row

HOST = "127.0.0.1"
# Per steady task: NEW_TASK, 5 status updates (PENDING, SUBMITTED, DISPATCHED, PROCESSING,
# COMPLETED), NEW_RESULT for its payload and its output, and the output's COMPLETED update.
EVENTS_PER_TASK = 9
TARGET_EVENTS_PER_S = 25_000.0  # the issue: a bare Python grpcio client receives ~25k msg/s


def receive(endpoint: str, session: str, seconds: float, server_pid: int) -> dict[str, Any]:
    """Run the bare receiver on one stream; its report plus the server's CPU over its window."""
    with CpuSampler(server_pid) as sampler, CpuSampler(None) as machine:
        report, exited = run_bare(endpoint, session, seconds, timeout=20)
    wall = float(report["wall_s"])
    server_cpu = sampler.cpu_between(exited - wall, exited)
    # CPU other processes took meanwhile (this one's sampling threads included): noise.
    other_cpu = machine.cpu_between(exited - wall, exited) - server_cpu - float(report["cpu_s"])
    return {
        "delivered_events_per_s": float(report["events_per_s"]),
        "events": report["events"],
        "wall_s": wall,
        "server_cpu_s": round(server_cpu, 3),
        "server_cpu_share": round(server_cpu / wall, 3),
        "server_events_per_cpu_s": round(report["events"] / max(server_cpu, 1e-9), 1),
        "receiver_cpu_s": report["cpu_s"],
        "receiver_cpu_share": round(float(report["cpu_s"]) / wall, 3),
        "receiver_events_per_cpu_s": report["events_per_cpu_s"],
        "other_cpu_share": round(max(other_cpu, 0.0) / wall, 3),
        "cores": psutil.cpu_count(),
    }


def measure_stream(rate: float, seconds: float) -> dict[str, Any]:
    """One simulator at `rate` tasks/s, one bare receiver for `seconds`: every figure."""
    port = common.free_port(HOST)
    cmd = common.cli_command("simulate", "--listen", f"{HOST}:{port}", "--scenario", "steady",
                             "--rate", f"{rate:g}", "--speed", "1")
    with common.running(cmd, name="simulator", port=port, timeout=30) as sim, \
            grpc.insecure_channel(f"{HOST}:{port}") as channel:
        session = running_session(channel)
        tasks0, counted0 = count_tasks(channel, session)
        figures = receive(f"http://{HOST}:{port}", session, seconds, sim.pid)
        tasks1, counted1 = count_tasks(channel, session)
    # Tasks the simulator created, from two counts bracketing the receiver's window.
    generated_tasks_per_s = (tasks1 - tasks0) / (counted1 - counted0)
    figures = {
        "rate_tasks_per_s": rate,
        "offered_events_per_s": rate * EVENTS_PER_TASK,
        "generated_tasks_per_s": round(generated_tasks_per_s, 1),
        "generated_events_per_s": round(generated_tasks_per_s * EVENTS_PER_TASK, 1),
        **figures,
        "session_tasks_at_end": tasks1,
    }
    figures["bottleneck"] = bottleneck(figures)
    return figures


def bottleneck(f: dict[str, Any]) -> str:
    """Name what limits delivery: generating the events, or sending them down the stream."""
    sim_busy = f["server_cpu_share"] >= SATURATED
    receiver_busy = f["receiver_cpu_share"] >= SATURATED
    causes = []
    if f["generated_events_per_s"] < KEEPS_UP * f["offered_events_per_s"]:
        # With CPU to spare this is schedule drift: each stream batch is scheduled from the
        # time the previous one actually ran, so the driver's lateness lowers the rate.
        causes.append("generation: " + ("simulator CPU-bound" if sim_busy else "lags schedule"))
    if f["delivered_events_per_s"] < KEEPS_UP * f["generated_events_per_s"]:
        causes.append("delivery: " + _delivery_limit(f, sim_busy, receiver_busy))
    return "; ".join(causes) or "none (keeps up)"


def _delivery_limit(f: dict[str, Any], sim_busy: bool, receiver_busy: bool) -> str:
    if sim_busy and receiver_busy:
        return "both CPU-bound"
    if sim_busy:
        return "simulator CPU-bound"
    if receiver_busy:
        return "receiver CPU-bound"
    used = f["server_cpu_share"] + f["receiver_cpu_share"] + f["other_cpu_share"]
    if used >= SATURATED * f["cores"]:  # every core nearly busy, whoever used them
        return f"machine CPU (other load {f['other_cpu_share']:.2f} core)"
    return "per-message latency (neither CPU-bound)"


def keeps_up(label: str, value: float, target: float, means: str) -> Row:
    """A rate against its target: ok from KEEPS_UP x target."""
    return ratio_row(label, value, target, "ev/s", means=means, ok_at=KEEPS_UP)


def stream_rows(runs: list[dict[str, Any]], aio: dict[str, Any] | None) -> list[Row]:
    """Rows for the simulator stream runs, compared with the aio ceiling if it was measured."""
    rows: list[Row] = []
    for run in runs:
        rows += _run_rows(run, aio)
    best = max(runs, key=lambda r: r["delivered_events_per_s"])["delivered_events_per_s"]
    rows.append(keeps_up("stream max delivered", best, TARGET_EVENTS_PER_S,
                         "the best delivered rate above; the target is what a bare Python "
                         "client takes (~25k msg/s)"))
    if aio:
        ceiling = aio["delivered_events_per_s"]
        rows.append(ratio_row("stream max delivered / bare aio ceiling", round(best / ceiling, 3),
                              1.0, means="the simulator's best against a bare grpc.aio server "
                              "streaming prebuilt events, same run", ok_at=KEEPS_UP))
    return rows


def _run_rows(run: dict[str, Any], aio: dict[str, Any] | None) -> list[Row]:
    rate = f"@{run['rate_tasks_per_s']:g}/s"
    target = min(run["offered_events_per_s"], TARGET_EVENTS_PER_S)
    delivered = run["delivered_events_per_s"]
    per_cpu = run["server_events_per_cpu_s"]
    aio_per_cpu = aio["server_events_per_cpu_s"] if aio else None
    return [
        keeps_up(f"stream {rate} generated", run["generated_events_per_s"],
                 run["offered_events_per_s"], "events/s the simulator created in the window "
                 "(task counts around it x 9); target: the rate offered, x 9"),
        keeps_up(f"stream {rate} delivered", delivered, target,
                 "events/s the bare receiver got; target: offered, at most 25k"),
        cpu_row(f"stream {rate} simulator CPU share", run["server_cpu_share"],
                "simulator CPU seconds / wall seconds over the receiver's window"),
        cpu_row(f"stream {rate} receiver CPU share", run["receiver_cpu_share"],
                "bare receiver CPU seconds / wall seconds"),
        other_row(f"stream {rate} other processes' CPU", run["other_cpu_share"]),
        Row(f"stream {rate} simulator ev/CPU-s", per_cpu, "ev/s", aio_per_cpu,
            f"x{per_cpu / aio_per_cpu:.2f} of bare aio" if aio_per_cpu else "",
            "events the simulator generates and sends per CPU-second; target: what the bare "
            "aio server spends to send one"),
        info_row(f"stream {rate} delivered/offered",
                 round(delivered / run["offered_events_per_s"], 3),
                 means="share of the offered events that reached the receiver",
                 note=f"limit: {run['bottleneck']}"),
    ]
