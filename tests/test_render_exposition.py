"""The fast /metrics renderers: exact output, and no stale values from their caches.

Renderer keeps each series' line head across scrapes; it must write exactly what a fresh render
writes, whatever changed in between. The oracles: prometheus_client's own encoders over the same
registry, and the plain per-line algorithm below.
"""

from __future__ import annotations

import gc
import math

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from armonik_observe.exporters.exposition import (
    Family,
    Renderer,
    format_value,
    format_values,
    without_created,
)
from armonik_observe.exporters.observed import ObservedState
from armonik_observe.exporters.prometheus import PrometheusSink, SelfStatus
from armonik_observe.model import (
    HealthSample,
    PartitionInfo,
    SessionInfo,
    StatusCounts,
    Versions,
)
from armonik_observe.pipeline import Batch

NOW_US = 1_700_000_000_000_000
ODD = 'a "quoted"\\ value\nover two lines'


# ----------------------------------------------------------------------------- oracles


def reference_family(family: Family, openmetrics: bool) -> str:
    """A family written line by line, label strings built every time: the format, spelled out."""

    def labelstring(names: tuple[str, ...], values: tuple[str, ...]) -> str:
        def escape(v: str) -> str:
            return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")

        pairs = sorted(zip(names, values, strict=True))
        text = ",".join(f'{n}="{escape(v)}"' for n, v in pairs)
        return f"{{{text}}}" if text else ""

    name, kind = family.name, family.kind
    exposed, sample = name, name
    if kind == "counter":
        sample = f"{name}_total"
        exposed = name if openmetrics else sample
    elif kind == "info":
        exposed = name.removesuffix("_info") if openmetrics else name
        kind = "info" if openmetrics else "gauge"
    documentation = family.help.replace("\\", r"\\").replace("\n", r"\n")
    lines = [f"# HELP {exposed} {documentation}\n# TYPE {exposed} {kind}\n"]
    names = family.labelnames
    if family.kind != "histogram":
        for values, value in family.rows:
            labels = labelstring(names, tuple(values)) if names else ""
            lines.append(f"{sample}{labels} {format_value(value)}\n")
        return "".join(lines)
    for values, counts, total in family.histogram_rows:
        running = 0.0
        for edge, count in zip(family.bucket_edges, counts, strict=True):
            running += count
            labels = labelstring((*names, "le"), (*values, edge))
            lines.append(f"{name}_bucket{labels} {format_value(running)}\n")
        labels = labelstring(names, tuple(values)) if names else ""
        lines.append(f"{name}_count{labels} {format_value(running)}\n")
        lines.append(f"{name}_sum{labels} {format_value(total)}\n")
    return "".join(lines)


def library_exposition(registry: CollectorRegistry, openmetrics: bool) -> bytes:
    """What prometheus_client's own encoders write for the registry (text: no _created)."""
    if openmetrics:
        return generate_openmetrics(registry)
    return without_created(generate_latest(registry).decode()).encode()


# ----------------------------------------------------------------------------- Renderer


def families_at(step: int) -> list[Family]:
    """Families whose rows, values and label sets change with the step."""
    special = [math.nan, math.inf, -math.inf, -0.0, 0.0, 1e300, 5e-324, 3, True, 1234567.0]
    sessions = [f"session-{(step + i) % 7}" for i in range(4)]  # some come, some go
    edges = ("0.1", "1", "+Inf")
    return [
        Family("t_up", "gauge", "Up.", (), rows=[((), float(step % 2))]),
        Family("t_tasks", "gauge", 'Tasks, with "quotes" and \\ and\nnewline.',
               ("status", "partition"),
               rows=[(("RUNNING", p), float(step * i)) for i, p in enumerate(["cpu", ODD])]),
        Family("t_special", "gauge", "Odd values.", ("i",),
               rows=[((str(i),), special[(i + step) % len(special)])
                     for i in range(len(special))]),
        Family("t_ended", "counter", "Ended.", ("session",),
               rows=[((s,), float(step + i)) for i, s in enumerate(sessions)]),
        Family("t_build_info", "info", "Build.", ("version",), rows=[((f"v{step}",), 1.0)]),
        Family("t_empty", "gauge", "Nothing.", ("x",)),
        Family("t_seconds", "histogram", "Durations.", ("session", "status"),
               histogram_rows=[((s, "OK"), [float(step), 0, -0.0 if step % 2 else 2.0],
                                math.nan if i == step % 4 else step * 0.25)
                               for i, s in enumerate(sessions)],
               bucket_edges=edges),
        Family("t_plain_seconds", "histogram", "Unlabelled.", (),
               histogram_rows=[((), [1.0, float(step), 0.0], 1.5)], bucket_edges=edges),
    ]


@pytest.mark.parametrize("openmetrics", [False, True])
def test_renderer_writes_what_a_fresh_render_writes_as_families_change(openmetrics: bool) -> None:
    kept = Renderer()
    previous = ""
    for step in range(12):
        families = families_at(step)
        got = "".join(kept.render(families, openmetrics))
        assert got == "".join(Renderer().render(families, openmetrics))
        assert got == "".join(reference_family(f, openmetrics) for f in families)
        assert got != previous  # every step changes some value: none may be served stale
        previous = got


def test_renderer_starts_over_when_label_values_churn() -> None:
    kept = Renderer(cache_limit=3)
    for step in range(20):
        family = Family("t_lag", "gauge", "Lag.", ("session",),
                        rows=[((f"s{step}-{i}",), float(i)) for i in range(5)])
        assert "".join(kept.render([family], False)) == reference_family(family, False)


def test_renderer_checks_bucket_counts_against_edges() -> None:
    family = Family("t_seconds", "histogram", "Durations.", (),
                    histogram_rows=[((), [1.0, 2.0], 3.0)], bucket_edges=("1", "2", "+Inf"))
    with pytest.raises(ValueError, match="2 bucket counts for 3 edges"):
        list(Renderer().render([family], False))


def test_format_values_is_format_value_of_each() -> None:
    values = [0.0, -0.0, 1.0, 2.5, 1e22, 1e-7, math.nan, math.inf, -math.inf, 7, False, 1e308]
    for chunk in (values, values[:6], [1e308, 1e308], [3, 4]):
        assert format_values(chunk) == [format_value(v) for v in chunk]


# ----------------------------------------------------------------------------- the sink


def state_batch(step: int) -> Batch:
    """Polled state that changes with the step: counts, sessions that come and go, health."""
    partitions = ["cpu", "gpu"] if step % 3 else ["cpu", "gpu", f"p-{step}"]
    sessions = [f"s-{(step + i) % 5}" for i in range(3)] + [ODD]
    return Batch(
        sessions=[SessionInfo(s, "RUNNING" if step % 2 else "PAUSED", ("cpu",), NOW_US,
                              default_partition="cpu") for s in sessions],
        partitions=[PartitionInfo(p, 10 + step, 2, 1, 0, ()) for p in partitions],
        counts=[StatusCounts(NOW_US + step * 10**6, "partition", p,
                             (("PROCESSING", step), ("COMPLETED", 3 * step + i)))
                for i, p in enumerate(partitions)]
        + [StatusCounts(NOW_US + step * 10**6, "session", s, (("COMPLETED", step + i),
                                                               ("PROCESSING", 9 - step)))
           for i, s in enumerate(sessions)],
        health=[HealthSample(NOW_US, "queue", "HEALTHY" if step % 2 else "DEGRADED")],
        versions=Versions(core=f"0.{step}", api="3"),
    )


@pytest.mark.parametrize("openmetrics", [False, True])
def test_sink_render_follows_every_state_change(openmetrics: bool) -> None:
    status = {"value": SelfStatus()}
    sink = PrometheusSink(registry=CollectorRegistry(), up=lambda: True,
                          self_status=lambda: status["value"], version="1.0",
                          state=ObservedState())
    previous = b""
    for step in range(8):
        sink.consume(state_batch(step))
        sink.transitions.labels("cpu", "COMPLETED").inc(10 ** step)  # e+06 from step 6
        sink.observe_rpc("ListTasks", "OK", 0.002 * step)
        status["value"] = SelfStatus(events_received={"new_task": step}, tasks_tracked=step,
                                     lag_seconds={f"s-{step % 5}": 0.5 * step})
        got = sink.render(openmetrics)
        # Below 1e6 the sink's values read as the library writes them: its encoders over the
        # same registry (collect() of the same collectors) are an independent oracle.
        assert got == library_exposition(sink.registry, openmetrics)
        assert got != previous
        previous = got
    assert f'partition="p-{step - step % 3}"' not in got.decode()  # gone with its partition


def test_sink_render_pauses_automatic_collection_and_restores_it() -> None:
    seen: list[bool] = []

    def status() -> SelfStatus:
        seen.append(gc.isenabled())
        return SelfStatus()

    sink = PrometheusSink(registry=CollectorRegistry(), up=lambda: True, self_status=status,
                          version="1.0")
    assert gc.isenabled()
    sink.render(False)
    assert seen == [False]
    assert gc.isenabled()
    gc.disable()
    try:
        sink.render(True)
        assert not gc.isenabled()  # whoever turned it off keeps it off
    finally:
        gc.enable()


def test_sink_render_restores_collection_when_a_collector_fails() -> None:
    def broken() -> SelfStatus:
        raise RuntimeError("status unavailable")

    sink = PrometheusSink(registry=CollectorRegistry(), up=lambda: True, self_status=broken,
                          version="1.0")
    with pytest.raises(RuntimeError):
        sink.render(False)
    assert gc.isenabled()
