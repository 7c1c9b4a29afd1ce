"""The report's charts, as Plotly figures built from a session's analysis.

Times are drawn in seconds since the session's first task was created (the section says when
that was), so every axis reads as elapsed time. Histograms are binned here, not in the page:
the report carries bins, never a million raw values.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from armonik_observe.analytics.analysis import SessionAnalysis
from armonik_observe.analytics.durations import MEASURES, PHASES

STATUS_COLORS = {"COMPLETED": "#4c78a8", "ERROR": "#e45756", "RETRIED": "#f58518",
                 "TIMEOUT": "#b279a2", "CANCELLED": "#9d9d9d", "": "#4c78a8"}
PHASE_COLORS = ("#f58518", "#eeca3b", "#72b7b2", "#4c78a8", "#54a24b")
PARTITION_COLORS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2",
                    "#ff9da6", "#9d755d", "#eeca3b", "#bab0ac")
CRITICAL = "#d62728"
HISTOGRAM_BINS = 60
LAYOUT = {"template": "simple_white", "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
          "legend": {"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom"},
          "font": {"size": 12}}


def _seconds_since(values: pl.Series, origin: datetime) -> list[float | None]:
    return ((values - origin).dt.total_microseconds() / 1e6).to_list()


def origin(analysis: SessionAnalysis) -> datetime | None:
    """Where the session's time axes start: its first creation."""
    first = analysis.tasks["created_at"].min()
    return first if isinstance(first, datetime) else None


def phase_breakdown(analysis: SessionAnalysis) -> go.Figure:
    """Mean seconds of each phase, stacked, per partition (and over all)."""
    stats = analysis.durations_by_partition
    if stats["partition_id"].n_unique() > 1:
        overall = analysis.durations.with_columns(pl.lit("all partitions").alias("partition_id"))
        stats = pl.concat([overall.select(stats.columns), stats])
    groups = list(dict.fromkeys(stats["partition_id"].to_list()))
    figure = go.Figure()
    for phase, color in zip(PHASES, PHASE_COLORS, strict=True):
        means = dict(stats.filter(pl.col("measure") == phase)
                     .select("partition_id", "mean").iter_rows())
        figure.add_bar(y=groups, x=[means.get(g) or 0.0 for g in groups], name=phase,
                       orientation="h", marker_color=color,
                       hovertemplate="%{y}: " + phase + " %{x:.4f} s<extra></extra>")
    figure.update_layout(**LAYOUT, barmode="stack", height=140 + 40 * len(groups),
                         legend_traceorder="normal",
                         xaxis_title="mean seconds per task, by phase")
    figure.update_yaxes(autorange="reversed")
    return figure


def histograms(analysis: SessionAnalysis,
               names: Sequence[str] = ("creation_to_end", "processing_to_end", "queue_wait"),
               bins: int = HISTOGRAM_BINS) -> go.Figure:
    """A histogram per measure, one series per partition, on bins shared by the partitions."""
    figure = make_subplots(rows=1, cols=len(names), subplot_titles=[f"{n} (s)" for n in names])
    frame = analysis.tasks.select("partition_id", *(MEASURES[n].alias(n) for n in names))
    partitions = sorted(frame["partition_id"].unique().to_list(), key=str)
    for column, name in enumerate(names, start=1):
        values = frame[name].drop_nulls().to_numpy()
        if not len(values):
            continue
        edges = np.histogram_bin_edges(values, bins=bins)
        centers, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
        for index, partition in enumerate(partitions):
            part = frame.filter(pl.col("partition_id") == partition)[name].drop_nulls()
            counts, _ = np.histogram(part.to_numpy(), bins=edges)
            figure.add_bar(x=centers, y=counts, width=widths, name=str(partition),
                           legendgroup=str(partition), showlegend=column == 1, opacity=0.75,
                           marker_color=PARTITION_COLORS[index % len(PARTITION_COLORS)],
                           row=1, col=column)
    figure.update_layout(**LAYOUT, barmode="overlay", height=330, bargap=0)
    figure.update_yaxes(title_text="tasks", row=1, col=1)
    return figure


def curves(analysis: SessionAnalysis, start: datetime) -> go.Figure:
    """Throughput, backlog and concurrency over time, a line per partition."""
    rows = (("throughput", "tasks ended / s"), ("backlog", "submitted, not started"),
            ("concurrency", "processing"))
    figure = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                           subplot_titles=[f"{name}: {what}" for name, what in rows])
    data = analysis.curves
    for index, ((partition,), part) in enumerate(data.group_by("partition_id",
                                                               maintain_order=True)):
        x = _seconds_since(part["time"], start)
        color = PARTITION_COLORS[index % len(PARTITION_COLORS)]
        for row, (name, _) in enumerate(rows, start=1):
            figure.add_scatter(x=x, y=part[name].to_list(), name=str(partition),
                               legendgroup=str(partition), showlegend=row == 1,
                               line={"color": color, "shape": "hv" if row > 1 else "linear"},
                               mode="lines", row=row, col=1)
    figure.update_layout(**LAYOUT, height=620)
    figure.update_xaxes(title_text="seconds since the first task was created", row=3, col=1)
    return figure


def gantt(analysis: SessionAnalysis, start: datetime) -> go.Figure:
    """A row per pod, a bar per task (or busy period), the critical path drawn over them."""
    bars = analysis.gantt.bars
    pods = sorted(bars["pod_hostname"].unique().to_list())
    height = int(min(max(320, 16 * len(pods) + 120), 2400))
    width = max(1.0, min(12.0, 0.7 * (height - 120) / max(len(pods), 1)))
    figure = go.Figure()
    for (status,), part in bars.group_by("status", maintain_order=True):
        x, y = _segments(_seconds_since(part["start"], start), _seconds_since(part["end"], start),
                         part["pod_hostname"].to_list())
        figure.add_scatter(x=x, y=y, mode="lines", name=status or "busy (merged)",
                           line={"width": width, "color": STATUS_COLORS.get(status, "#888")},
                           hoverinfo="skip")
    _critical_overlay(figure, analysis, start, width)
    figure.update_layout(**LAYOUT, height=height, xaxis_title="seconds since the first task "
                                                              "was created")
    figure.update_yaxes(categoryorder="array", categoryarray=pods[::-1], type="category",
                        showticklabels=len(pods) <= 150)
    return figure


def _segments(starts: list[float | None], ends: list[float | None],
              rows: list[str]) -> tuple[list[float | None], list[str | None]]:
    """One polyline of many segments (None between two): an SVG path, not a shape each."""
    x: list[float | None] = []
    y: list[str | None] = []
    for begin, end, row in zip(starts, ends, rows, strict=True):
        x += [begin, end, None]
        y += [row, row, None]
    return x, y


def _critical_overlay(figure: go.Figure, analysis: SessionAnalysis, start: datetime,
                      width: float) -> None:
    steps = critical_steps(analysis)
    ran = steps.filter(pl.col("started_at").is_not_null() & pl.col("pod_hostname").is_not_null()
                       & (pl.col("pod_hostname") != ""))
    if ran.is_empty():
        return
    x, y = _segments(_seconds_since(ran["started_at"], start),
                     _seconds_since(ran["ended_at"], start), ran["pod_hostname"].to_list())
    figure.add_scatter(x=x, y=y, mode="lines+markers", name="critical path",
                       line={"width": max(width, 3.0), "color": CRITICAL},
                       marker={"size": 6, "color": CRITICAL})


def critical_steps(analysis: SessionAnalysis) -> pl.DataFrame:
    """The critical path's tasks, in order, with their times and the edge into each."""
    chain = analysis.critical_path
    order = pl.DataFrame({"task_id": list(chain.task_ids), "via": list(chain.via),
                          "step": list(range(1, len(chain.task_ids) + 1))},
                         schema={"task_id": pl.String, "via": pl.String, "step": pl.Int64})
    return order.join(analysis.tasks, on="task_id", how="left").sort("step")


def critical_path(steps: pl.DataFrame, start: datetime) -> go.Figure:
    """Steps of the critical path on a timeline, a row each: waiting for its predecessors
    (created to submitted), queued (submitted to started), working (started to ended)."""
    labels = [f"{step}. {task[:8]}"
              for step, task in zip(steps["step"], steps["task_id"], strict=True)]
    spans = (("waiting for predecessors", "created_at", "submitted_at", "#bab0ac"),
             ("queued to start", "submitted_at", "started_at", "#f58518"),
             ("working", "started_at", "ended_at", CRITICAL))
    figure = go.Figure()
    for name, begin, end, color in spans:
        first = _seconds_since(steps[begin], start)
        last = _seconds_since(steps[end], start)
        figure.add_bar(y=labels, base=first, name=name, orientation="h", marker_color=color,
                       x=[None if a is None or b is None else b - a
                          for a, b in zip(first, last, strict=True)])
    figure.update_layout(**LAYOUT, barmode="overlay", height=160 + 26 * len(labels),
                         xaxis_title="seconds since the first task was created")
    figure.update_yaxes(autorange="reversed", type="category")
    return figure
