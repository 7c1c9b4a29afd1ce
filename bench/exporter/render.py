"""/metrics rendering at ~10k series.

A PrometheusSink filled to ~10k series is rendered as the HTTP handler does (the sink's fast
renderer when the handler is given one, else the registry's encoders) as text, OpenMetrics and
gzipped text, `times` times or `budget` seconds per format: p50/p99 wall and CPU, and collector
passes during the timed renders. prometheus_client's own text encoder is timed beside it as a
yardstick.
"""

from __future__ import annotations

import functools
import gc
import inspect
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from armonik_observe.exporters.http import render_metrics
from armonik_observe.exporters.prometheus import PrometheusSink, SelfStatus
from armonik_observe.fact_columns import TaskFacts
from armonik_observe.model import (
    HealthSample,
    PartitionInfo,
    SessionInfo,
    StatusCounts,
    TaskFact,
    TaskStatus,
    Versions,
)
from armonik_observe.pipeline import Batch
from armonik_observe.simulator.clock import MICROS
from bench.common import window
from bench.report import Row, info_row, other_row, percentile, ratio_row

TARGET_RENDER_P99_MS = 50.0
TARGET_SERIES = 10_000
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def filled_sink(partitions: int = 20, sessions: int = 200, fact_partitions: int = 7,
                applications: int = 3, fact_statuses: int = 3) -> PrometheusSink:
    """A PrometheusSink on a fresh registry with every family populated: ~10k series.

    Polled state: 20 partitions x 13 statuses, 200 followed sessions x 13 statuses; task facts:
    7 partitions x 3 applications x 3 end statuses, each with 4 histograms of 21 buckets; event
    transitions: 20 partitions x 13 statuses; RPC timings for 7 RPCs; the self-metrics.
    """
    statuses = [s.name for s in TaskStatus if s != TaskStatus.UNSPECIFIED]
    now = int(time.time() * MICROS)
    session_ids = [str(uuid.UUID(int=i + 1, version=4)) for i in range(sessions)]
    partition_ids = [f"partition-{i:02d}" for i in range(partitions)]
    status = SelfStatus(
        events_received={"new_task": 123456, "task_status_update": 654321},
        stream_states={"connected": sessions}, reconnects=3, last_event_at=time.time(),
        tasks_tracked=150_000, followed=sessions, unfollowed=12,
        dropped={"duplicate": 10, "replay": 5000, "regression": 2},
        stuck={(p, s): 1 for p in partition_ids[:5] for s in ("SUBMITTED", "PROCESSING")},
        lag_seconds={s: 0.5 for s in session_ids},
    )
    sink = PrometheusSink(registry=CollectorRegistry(), up=lambda: True,
                          self_status=lambda: status, version="bench")
    counts = [StatusCounts(now, "partition", p, tuple((s, 10) for s in statuses))
              for p in partition_ids]
    counts += [StatusCounts(now, "session", s, tuple((st, 5) for st in statuses))
               for s in session_ids]
    sink.consume(Batch(
        sessions=[SessionInfo(s, "RUNNING", (partition_ids[i % partitions],), now,
                              default_partition=partition_ids[i % partitions])
                  for i, s in enumerate(session_ids)],
        partitions=[PartitionInfo(p, 10, 2, 1, 0, ()) for p in partition_ids],
        counts=counts,
        health=[HealthSample(now, name, "HEALTHY") for name in ("database", "object", "queue")],
        versions=Versions(core="0.30.0", api="3.21.0"),
    ))
    facts: list[TaskFact] = []
    end_statuses = ["COMPLETED", "ERROR", "CANCELLED", "TIMEOUT", "RETRIED"][:fact_statuses]
    for p in partition_ids[:fact_partitions]:
        for a in range(applications):
            for st in end_statuses:
                for k in range(25):  # spread over the buckets
                    micros = int(10 ** (3 + k * 0.3))
                    facts.append(TaskFact(
                        task_id=f"t{len(facts)}", session_id=session_ids[0], status=st,
                        partition_id=p, application_name=f"app-{a}", application_version="1",
                        created_at=now - micros, submitted_at=now - micros,
                        received_at=now - micros // 2, acquired_at=None, fetched_at=None,
                        started_at=now - micros // 3, processed_at=None, ended_at=now,
                        creation_to_end=micros, processing_to_end=micros // 3,
                        received_to_end=micros // 2))
    sink.consume(Batch(facts=TaskFacts.of(facts)))
    for rpc in ("ListSessions", "ListPartitions", "CountTasksByStatus", "ListTasks",
                "CheckHealth", "ListVersions", "GetEvents"):
        sink.observe_rpc(rpc, "OK", 0.004)
    for p in partition_ids:
        for st in statuses:
            sink.transitions.labels(p, st).inc(7)
    return sink


def handler_render(sink: PrometheusSink) -> tuple[str, Callable[[str, str], bytes]]:
    """Render as MetricsHttpServer's /metrics handler would for this sink's registry.

    The handler passes the sink's own renderer to render_metrics when both know of one.
    """
    fast = getattr(sink, "render", None)
    if fast is not None and "render" in inspect.signature(render_metrics).parameters:
        return "sink.render", lambda accept, encoding: render_metrics(
            sink.registry, accept, encoding, [], fast)[0]
    return "registry encoders", lambda accept, encoding: render_metrics(
        sink.registry, accept, encoding, [])[0]


def series_count(body: bytes) -> int:
    """Samples in a text exposition: lines that are neither comments nor blank."""
    return sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))


def _time_renders(render: Callable[[], bytes], times: int, budget: float) -> dict[str, Any]:
    render()  # warm up (label caches, first-call paths)
    walls: list[float] = []
    cpus: list[float] = []
    # Collector passes that ran inside the timed renders, by generation: the usual cause of a
    # render's tail when something allocates during it.
    passes = [0, 0, 0]

    def count_pass(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            passes[info["generation"]] += 1

    gc.collect()
    deadline = time.monotonic() + budget
    body = b""
    gc.callbacks.append(count_pass)
    try:
        while len(walls) < times and (len(walls) < 15 or time.monotonic() < deadline):
            w0, c0 = time.perf_counter(), time.thread_time()
            body = render()
            cpus.append(1000 * (time.thread_time() - c0))
            walls.append(1000 * (time.perf_counter() - w0))
    finally:
        gc.callbacks.remove(count_pass)
    walls.sort()
    cpus.sort()
    return {"renders": len(walls), "p50_ms": round(percentile(walls, 0.5), 2),
            "p99_ms": round(percentile(walls, 0.99), 2), "max_ms": round(walls[-1], 2),
            "cpu_p50_ms": round(percentile(cpus, 0.5), 2),
            "cpu_p99_ms": round(percentile(cpus, 0.99), 2), "bytes": len(body),
            "gc_passes": passes}


def measure_render(times: int, budget: float) -> dict[str, Any]:
    """/metrics at ~10k series: text, OpenMetrics and gzipped text, as the handler renders."""
    sink = filled_sink()
    path, render = handler_render(sink)
    text = render("", "")
    library_text = generate_latest(sink.registry)
    result: dict[str, Any] = {"path": path, "series": series_count(text),
                              "library_series": series_count(library_text),
                              "text_bytes": len(text), "formats": {}}
    with window() as noise:
        for name, accept, encoding in (("text", "", ""), ("openmetrics", OPENMETRICS, ""),
                                       ("text+gzip", "", "gzip")):
            result["formats"][name] = _time_renders(
                functools.partial(render, accept, encoding), times, budget)
        # The yardstick: prometheus_client's own text encoder over the same registry.
        result["library_text"] = _time_renders(
            lambda: generate_latest(sink.registry), times, budget / 2)
    result["other_cpu_share"] = round(noise.other_share, 3)
    result["collect_ms"] = _collect_breakdown(sink.registry)
    return result


def _collect_breakdown(registry: CollectorRegistry, rounds: int = 5) -> dict[str, float]:
    """Median ms of collect() per registered collector: the part before any formatting."""
    out: dict[str, float] = {}
    for collector in list(registry._collector_to_names):  # a benchmark may peek
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            list(collector.collect())
            samples.append(1000 * (time.perf_counter() - started))
        label = type(collector).__name__
        out[label] = round(out.get(label, 0.0) + statistics.median(samples), 2)
    return out


def render_rows(result: dict[str, Any]) -> list[Row]:
    """Rows for /metrics rendering."""
    size = result["series"] / TARGET_SERIES
    rows = [Row("render: series", result["series"], "", TARGET_SERIES,
                f"x{size:.2f} {'ok' if abs(size - 1) < 0.05 else 'OFF'}",
                "samples in one text /metrics of the filled sink: the size rendered, ~10k",
                f"{result['text_bytes'] / 1024:.0f} KiB text; path: {result['path']}")]
    for name, figures in result["formats"].items():
        passes = "/".join(map(str, figures.get("gc_passes", ())))
        rows += [
            info_row(f"render {name}: p50", figures["p50_ms"], "ms",
                     means=f"median wall time of one {name} /metrics render",
                     note=f"CPU p50 {figures['cpu_p50_ms']:.1f} ms"),
            ratio_row(f"render {name}: p99", figures["p99_ms"], TARGET_RENDER_P99_MS, "ms",
                      higher_is_better=False,
                      means=f"99th percentile wall time of one {name} render: a scrape's tail",
                      note=f"n={figures['renders']}, CPU p99 {figures['cpu_p99_ms']:.1f} ms, "
                           f"gc passes gen0/1/2 {passes}"),
        ]
    library = result["library_text"]
    rows.append(info_row("render: prometheus_client text p50", library["p50_ms"], "ms",
                         means="prometheus_client's own text encoder over the same registry: "
                               "the yardstick", note=f"n={library['renders']}"))
    rows.append(other_row("render: other processes' CPU", result["other_cpu_share"]))
    return rows
