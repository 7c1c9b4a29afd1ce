"""Draw a dashboard's panels with matplotlib, laid out on Grafana's 24-column grid.

Time series as lines (stacked where the panel stacks), stats as big values with the panel's
value mappings and thresholds, bar gauges as bars, heatmaps from cumulative `le` buckets as
Grafana de-accumulates them. A preview, not a Grafana: enough to see what each panel shows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MultipleLocator

from armonik_observe.dashboards.promql import substitute

GRID_WIDTH = 24
ROW_INCHES = 0.3  # Grafana's grid row is 30 px
WIDTH_INCHES = 16.0
HEADER_INCHES = 0.6
BACKGROUND, PANEL, TEXT, MUTED = "#111217", "#181b1f", "#ccccdc", "#8e8e9e"
PALETTE = ("#73BF69", "#F2CC0C", "#8AB8FF", "#FF780A", "#F2495C", "#5794F2", "#B877D9",
           "#FADE2A", "#37872D", "#C4162A")
NAMED_COLORS = {"green": "#73BF69", "red": "#F2495C", "orange": "#FF9830", "blue": "#5794F2",
                "text": TEXT, "dark-orange": "#FF780A"}
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")
HEAT = LinearSegmentedColormap.from_list("heat", [PANEL, "#C4162A", "#FF780A", "#FADE2A"])
# Room inside a panel for its title and the axes' tick labels, in inches.
TITLE_INCHES, LEFT_INCHES, BOTTOM_INCHES, GAP_INCHES = 0.25, 0.8, 0.25, 0.05
TICK_STEPS_S = (5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600)


@dataclass(frozen=True)
class Series:
    """One series of one target: its legend and its [time, value] points."""

    label: str
    times: list[float]
    values: list[float]

    @classmethod
    def of(cls, metric: dict[str, str], points: Sequence[Sequence[Any]], legend: str,
           expr: str) -> Series:
        """A series from Prometheus's answer, named by the target's legend format."""
        if legend and legend != "__auto":
            label = _LEGEND.sub(lambda m: metric.get(m[1], ""), legend)
        else:
            label = ", ".join(f"{k}={v}" for k, v in sorted(metric.items())) or expr[:40]
        return cls(label, [float(t) for t, _ in points], [float(v) for _, v in points])

    @property
    def last(self) -> float:
        """The last finite value, NaN if none."""
        return next((v for v in reversed(self.values) if math.isfinite(v)), math.nan)


@dataclass(frozen=True)
class Placed:
    """A panel on the grid (a copy, for repeats), with its variables and its targets' data."""

    panel: dict[str, Any]
    x: int
    y: int
    w: int
    h: int
    values: dict[str, str]
    data: list[list[Series]] = field(default_factory=list)


def fmt(value: float, unit: str) -> str:
    """A value as Grafana would show it in the unit (the units the dashboards use)."""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else str(value)
    if unit == "percentunit":
        return f"{value * 100:.1f}%"
    if unit == "s":
        return _seconds(value)
    if unit == "bytes":
        return _scaled(value, 1024, ("B", "KiB", "MiB", "GiB", "TiB"))
    if unit == "dateTimeAsIso":
        return datetime.fromtimestamp(value / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    suffix = unit.removeprefix("suffix:").strip() if unit.startswith("suffix:") else ""
    return f"{_scaled(value, 1000, ('', 'K', 'M', 'G'))}{' ' + suffix if suffix else ''}"


def _seconds(value: float) -> str:
    magnitude = abs(value)
    if magnitude < 1:
        return f"{value * 1000:.3g} ms"
    for size, name in ((86400, "day"), (3600, "hour"), (60, "min")):
        if magnitude >= size:
            return f"{value / size:.3g} {name}"
    return f"{value:.3g} s"


def _scaled(value: float, base: int, names: Sequence[str]) -> str:
    index = 0
    while abs(value) >= base and index < len(names) - 1:
        value /= base
        index += 1
    return f"{value:.3g}{(' ' if base == 1024 else '') + names[index]}"


def mapped(value: float, panel: dict[str, Any]) -> tuple[str, str] | None:
    """The (text, color) a value mapping of the panel gives the value, if any."""
    for mapping in panel["fieldConfig"]["defaults"].get("mappings", []):
        options = mapping["options"]
        if mapping["type"] == "value" and math.isfinite(value):
            result = options.get(f"{value:g}")
        elif mapping["type"] == "special" and math.isnan(value):
            result = options["result"]
        else:
            result = None
        if result:
            return result.get("text", fmt(value, "short")), result.get("color", "text")
    return None


def threshold_color(value: float, panel: dict[str, Any]) -> str:
    """The color of the last threshold step the value reaches (text when none)."""
    steps = panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])
    color = "text"
    for step in steps:
        if step["value"] is None or (math.isfinite(value) and value >= step["value"]):
            color = step["color"]
    return color


def _color(name: str) -> str:
    return NAMED_COLORS.get(name, name if name.startswith("#") else TEXT)


def _unit(panel: dict[str, Any]) -> str:
    return str(panel["fieldConfig"]["defaults"].get("unit", "short"))


def _style(ax: Axes) -> None:
    ax.set_facecolor(PANEL)
    ax.tick_params(colors=MUTED, labelsize=7)
    for spine in ax.spines.values():
        spine.set_color("#2c3235")
    ax.grid(color="#2c3235", linewidth=0.5)


def draw_graph(ax: Axes, placed: Placed) -> None:
    """Lines, or stacked areas, against time."""
    panel, unit = placed.panel, _unit(placed.panel)
    series = [s for target in placed.data for s in target]
    stacked = panel["fieldConfig"]["defaults"].get("custom", {}).get("stacking", {}).get(
        "mode") == "normal"
    start = min((s.times[0] for s in series if s.times), default=0.0)
    if stacked and series:
        times = sorted({t for s in series for t in s.times})
        rows = [[dict(zip(s.times, s.values, strict=True)).get(t, 0.0) for t in times]
                for s in series]
        rows = [[v if math.isfinite(v) else 0.0 for v in row] for row in rows]
        ax.stackplot([t - start for t in times], rows, labels=[s.label for s in series],
                     colors=PALETTE[:len(series)] * (len(series) // len(PALETTE) + 1),
                     alpha=0.7)
    else:
        for index, s in enumerate(series):
            ax.plot([t - start for t in s.times], s.values, label=s.label, linewidth=1.2,
                    color=PALETTE[index % len(PALETTE)])
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v, unit)))
    span = max((s.times[-1] - start for s in series if s.times), default=60.0)
    ax.xaxis.set_major_locator(MultipleLocator(next(
        (step for step in TICK_STEPS_S if span / step <= 8), TICK_STEPS_S[-1])))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{int(v) // 60}:{int(v) % 60:02d}"))
    handles, labels = ax.get_legend_handles_labels()
    moving = [(h, label) for h, label, s in zip(handles, labels, series, strict=False)
              if any(v for v in s.values if math.isfinite(v))]  # all-zero series: no legend
    if moving:
        ax.legend(*zip(*moving, strict=True), loc="upper left", fontsize=6,
                  ncol=min(4, len(moving)), frameon=False, labelcolor=TEXT, handlelength=1.2)


def draw_stat(ax: Axes, placed: Placed) -> None:
    """The last value of each series, big, mapped and colored."""
    panel, unit = placed.panel, _unit(placed.panel)
    series = [s for target in placed.data for s in target]
    names_only = panel["options"].get("textMode") == "name"
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for index, s in enumerate(series):
        x = (index + 0.5) / max(1, len(series))
        value = s.last if not names_only else math.nan
        text, color = mapped(value, panel) or (fmt(value, unit), threshold_color(value, panel))
        if names_only:
            text, color = s.label, "text"
        elif len(series) > 1:
            ax.text(x, 0.78, s.label, ha="center", va="center", fontsize=7, color=MUTED,
                    transform=ax.transAxes)
        ax.text(x, 0.4, text, ha="center", va="center", color=_color(color),
                fontsize=16 if not names_only and len(series) < 4 else 9,
                fontweight="bold", transform=ax.transAxes)


def draw_bars(ax: Axes, placed: Placed) -> None:
    """Horizontal bars of each series' value, its name and value written beside it."""
    unit = _unit(placed.panel)
    series = [s for target in placed.data for s in target]
    values = [s.last if math.isfinite(s.last) else 0.0 for s in series]
    top = max([*values, 1.0])
    ax.barh(range(len(series)), values, color=PALETTE[0], height=0.6)
    for index, (s, value) in enumerate(zip(series, values, strict=True)):
        ax.text(top * 1.01, index, f"{s.label}: {fmt(value, unit)}", va="center", fontsize=6,
                color=TEXT)
    ax.set_xlim(0, top * 1.35)
    ax.set_yticks([])
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v, unit)))


def draw_heatmap(ax: Axes, placed: Placed) -> None:
    """Observations per bucket over time: cumulative `le` series de-accumulated."""
    series = sorted((s for target in placed.data for s in target),
                    key=lambda s: math.inf if s.label == "+Inf" else float(s.label))
    if not series:
        return
    cumulative = [[v if math.isfinite(v) else 0.0 for v in s.values] for s in series]
    rows = [cumulative[0], *([b - a for a, b in zip(below, above, strict=True)]
                             for below, above in pairwise(cumulative))]
    used = [i for i, row in enumerate(rows) if any(v > 0 for v in row)]
    if used:
        rows, series = rows[used[0]:used[-1] + 1], series[used[0]:used[-1] + 1]
    ax.imshow(rows, aspect="auto", origin="lower", cmap=HEAT, interpolation="nearest")
    ax.set_yticks(range(len(series)), [f"≤{s.label}" for s in series], fontsize=6)
    ax.set_xticks([])
    ax.grid(False)


DRAW = {"timeseries": draw_graph, "stat": draw_stat, "bargauge": draw_bars,
        "heatmap": draw_heatmap}


def _title(placed: Placed, chosen: dict[str, str]) -> str:
    values = {**chosen, **placed.values}
    return substitute(placed.panel["title"], {k: v or "-" for k, v in values.items()})


def draw_dashboard(model: dict[str, Any], layout: Sequence[Placed], chosen: dict[str, str],
                   path: Path) -> None:
    """The dashboard as one PNG."""
    rows = max(p.y + p.h for p in layout)
    height = HEADER_INCHES + rows * ROW_INCHES
    figure = Figure(figsize=(WIDTH_INCHES, height), facecolor=BACKGROUND)  # no pyplot: no GUI
    shown = ", ".join(f"{k}={v}" for k, v in chosen.items() if not k.startswith("__"))
    figure.text(0.01, 1 - 0.35 / height, f"{model['title']}    ({shown})", color=TEXT,
                fontsize=12, fontweight="bold", va="center")
    for placed in layout:
        left = placed.x / GRID_WIDTH
        top = 1 - (HEADER_INCHES + placed.y * ROW_INCHES) / height
        span = placed.h * ROW_INCHES / height
        if placed.panel["type"] == "row":
            figure.text(left + 0.005, top - span / 2, _title(placed, chosen), color=TEXT,
                        fontsize=10, fontweight="bold", va="center")
            continue
        width = placed.w / GRID_WIDTH
        gap_x, gap_y = GAP_INCHES / WIDTH_INCHES, GAP_INCHES / height
        frame = figure.add_axes((left + gap_x, top - span + gap_y, width - 2 * gap_x,
                                 span - 2 * gap_y))
        frame.set_facecolor(PANEL)
        frame.set_xticks([])
        frame.set_yticks([])
        frame.set_title(_title(placed, chosen), color=TEXT, fontsize=8, loc="left", y=1,
                        pad=-11)
        # Axes inside the frame, leaving room for the title and the tick labels.
        axes_left = LEFT_INCHES / WIDTH_INCHES if placed.panel["type"] != "stat" else gap_x
        ax = figure.add_axes((left + axes_left, top - span + BOTTOM_INCHES / height,
                              width - axes_left - 2 * gap_x,
                              span - (TITLE_INCHES + BOTTOM_INCHES) / height))
        _style(ax)
        if placed.panel["type"] == "stat":
            ax.set_facecolor("none")
            for spine in ax.spines.values():
                spine.set_visible(False)
        DRAW[placed.panel["type"]](ax, placed)
    figure.savefig(path, dpi=100, facecolor=BACKGROUND)
