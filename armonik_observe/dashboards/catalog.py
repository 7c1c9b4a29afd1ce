"""Every query of the generated dashboards and rules, read back from their JSON and YAML.

Tests run them on a real Prometheus and the previews plot them: both start from the files users
import, not from the code that wrote them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_LABEL_VALUES = re.compile(r"label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)")


@dataclass(frozen=True)
class PanelQuery:
    """One target of one panel."""

    dashboard: str  # uid
    panel: str  # title
    panel_type: str
    ref: str
    expr: str
    legend: str
    instant: bool
    repeat: str  # the variable the panel (or its row) repeats over; "" if none


def panels(model: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    """Every panel that is not a row, with the variable it repeats over (its own or its row's)."""
    row_repeat = ""
    for panel in model.get("panels", []):
        if panel["type"] == "row":
            row_repeat = panel.get("repeat", "")
            yield from ((inner, row_repeat) for inner in panel.get("panels", []))
            continue
        yield panel, panel.get("repeat") or row_repeat


def panel_queries(model: dict[str, Any]) -> Iterator[PanelQuery]:
    """Every target of every panel of a dashboard."""
    for panel, repeat in panels(model):
        for target in panel.get("targets", []):
            yield PanelQuery(model["uid"], panel["title"], panel["type"], target["refId"],
                             target["expr"], target.get("legendFormat", ""),
                             bool(target.get("instant")) and not target.get("range"), repeat)


def variables(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The dashboard's template variables by name, in order."""
    return {variable["name"]: variable for variable in model["templating"]["list"]}


def label_values_query(query: str) -> tuple[str, str]:
    """(selector, label) of a `label_values(selector, label)` variable query."""
    match = _LABEL_VALUES.fullmatch(query.strip())
    if match is None:
        raise ValueError(f"not a label_values() query: {query!r}")
    return match["selector"] or "", match["label"]


def rule_expressions(rules: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(name, expression) of every recording and alerting rule."""
    for group in rules["groups"]:
        for rule in group["rules"]:
            yield rule.get("record") or rule["alert"], rule["expr"]
