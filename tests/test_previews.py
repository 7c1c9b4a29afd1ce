"""The previews lay the dashboards out as Grafana does (repeats expanded, what follows moved down)
and draw them; values are shown in the panels' units and mappings."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

from matplotlib.image import imread

from armonik_observe.dashboards.drawing import (
    ROW_INCHES,
    Placed,
    Series,
    draw_dashboard,
    fmt,
    mapped,
)
from armonik_observe.dashboards.grafana import TASKS_PER_S
from armonik_observe.dashboards.previews import expand

GRAFANA = Path(__file__).resolve().parents[1] / "dashboards" / "grafana"
PARTITIONS = ["cpu", "gpu-a100", "io"]


def model(uid: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GRAFANA / f"{uid}.json").read_text(encoding="utf-8"))
    return data


def overlapping(layout: list[Placed]) -> list[tuple[str, str]]:
    def cells(p: Placed) -> set[tuple[int, int]]:
        return {(x, y) for x in range(p.x, p.x + p.w) for y in range(p.y, p.y + p.h)}
    return [(a.panel["title"], b.panel["title"]) for a, b in itertools.combinations(layout, 2)
            if cells(a) & cells(b)]


def test_a_repeated_panel_fills_its_line_and_pushes_the_rest_down() -> None:
    layout = expand(model("armonik-observe-partitions"), {"partition": PARTITIONS})
    busy = [p for p in layout if p.panel["title"].startswith("Busy workers against")]
    assert [(p.values["partition"], p.x, p.y) for p in busy] == [
        ("cpu", 0, 1), ("gpu-a100", 12, 1), ("io", 0, 9)]
    queued_row = next(p for p in layout if p.panel["title"] == "Queued work")
    assert queued_row.y == 17  # after the two lines of busy panels
    assert not overlapping(layout)


def test_a_repeated_row_copies_its_block() -> None:
    layout = expand(model("armonik-observe-overview"), {"partition": PARTITIONS})
    rows = [p for p in layout if p.panel["type"] == "row" and p.panel.get("repeat")]
    assert [p.values["partition"] for p in rows] == PARTITIONS
    heatmaps = [p for p in layout if p.panel["type"] == "heatmap"]
    assert len(heatmaps) == 4 * len(PARTITIONS)
    assert {p.values["partition"] for p in heatmaps if p.y == rows[1].y + 1} == {"gpu-a100"}
    assert not overlapping(layout)


def test_values_are_shown_in_the_panels_units() -> None:
    assert fmt(0.5, "s") == "500 ms"
    assert fmt(90, "s") == "1.5 min"
    assert fmt(0.25, "percentunit") == "25.0%"
    assert fmt(2048, "bytes") == "2 KiB"
    assert fmt(12.3, TASKS_PER_S) == "12.3 tasks/s"
    assert fmt(1_500_000, "short") == "1.5M"
    assert fmt(1_896_112_800_000, "dateTimeAsIso") == "2030-01-31 18:00:00"
    session = model("armonik-observe-session")
    eta = next(p for p in session["panels"] if p["title"] == "Completion ETA")
    assert mapped(math.nan, eta) == ("unknown", "text")
    control = next(p for p in model("armonik-observe-overview")["panels"]
                   if p["title"] == "Control plane")
    assert mapped(1.0, control) == ("UP", "green")


def test_a_dashboard_is_drawn_on_its_grid(tmp_path: Path) -> None:
    board = model("armonik-observe-session")
    layout = expand(board, {"session": ["s-1"]})
    points = [[1_700_000_000.0 + t, str(v)] for t, v in enumerate((3, 2, 1))]
    series = Series.of({"status": "COMPLETED"}, points, "{{status}}", "expr")
    assert series.label == "COMPLETED" and series.last == 1.0
    drawn = [Placed(p.panel, p.x, p.y, p.w, p.h, p.values,
                    [[series] for _ in p.panel.get("targets", [])]) for p in layout]
    path = tmp_path / "session.png"
    draw_dashboard(board, drawn, {"job": "metrics-exporter", "session": "s-1"}, path)
    height, width, _ = imread(path).shape
    rows = max(p.y + p.h for p in layout)
    assert width == 1600
    assert height == round(100 * (0.6 + rows * ROW_INCHES))
