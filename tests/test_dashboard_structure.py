"""Each committed dashboard is well formed: stable uid and tags, variables that resolve, panels
with targets on the `datasource` variable, unique ids, a grid without overlaps, and every
selector of every query filtered on `$job` and `$instance`."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest

from armonik_observe.dashboards import generate
from armonik_observe.dashboards.catalog import label_values_query, panel_queries, panels, variables
from armonik_observe.dashboards.promql import DEFAULT_JOB, variables_in

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = sorted((ROOT / "dashboards" / "grafana").glob("*.json"))
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRAFANA_VARIABLES = {"__rate_interval", "__interval", "__range"}
SCOPE = ('job=~"$job"', 'instance=~"$instance"')
GRID_WIDTH = 24
# PromQL words that are not metric names, and clauses whose parentheses hold label names.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset"}
LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
SELECTOR = re.compile(r"\{[^{}]*\}")
RANGES = re.compile(r"\[[^\]]*\]")
NAME = re.compile(r"[A-Za-z_:][\w:]*")


def load(path: Path) -> dict[str, Any]:
    model: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return model


MODELS = {path.stem: load(path) for path in DASHBOARDS}
ids = pytest.mark.parametrize("uid", sorted(MODELS))


def unfiltered_selectors(expr: str) -> list[str]:
    """Selectors of `expr` lacking the job or instance matcher, and bare metric names."""
    missing = [block for block in SELECTOR.findall(expr)
               if not all(matcher in block for matcher in SCOPE)]
    rest = LABEL_LISTS.sub(" ", RANGES.sub(" ", STRINGS.sub('""', expr)))
    blocks = [block.span() for block in SELECTOR.finditer(rest)]
    for match in NAME.finditer(rest):
        if any(start < match.start() < end for start, end in blocks):
            continue  # a label name inside a selector
        following = rest[match.end():].lstrip()
        if match[0] not in KEYWORDS and not following.startswith(("(", "{")):
            missing.append(match[0])
    return missing


def test_the_selector_check_finds_unfiltered_selectors() -> None:
    good = ('sum by (le) (rate(x_bucket{job=~"$job", instance=~"$instance"}[5m])) '
            'or on (le) y{job=~"$job", instance=~"$instance", a="b"} * 0')
    assert unfiltered_selectors(good) == []
    assert unfiltered_selectors('sum(x{job=~"$job"}) / y') == ['{job=~"$job"}', "y"]
    assert unfiltered_selectors('histogram_quantile(0.5, z{job=~"$job", instance=~"$instance"})'
                                " + time()") == []


def test_the_dashboards_are_the_generated_ones() -> None:
    assert sorted(MODELS) == sorted(board.UID for board in generate.BOARDS)


@ids
def test_identity(uid: str) -> None:
    model = MODELS[uid]
    assert model["uid"] == uid
    assert model["title"].startswith("ArmoniK / ")
    assert {"armonik", "armonik-observe"} <= set(model["tags"])
    assert model["description"]
    titles = [m["title"] for m in MODELS.values()]
    assert len(set(titles)) == len(titles)


@ids
def test_variables_resolve(uid: str) -> None:
    model = MODELS[uid]
    defined = variables(model)
    assert list(defined)[:3] == ["datasource", "job", "instance"]
    assert defined["datasource"]["type"] == "datasource"
    assert defined["datasource"]["query"] == "prometheus"
    assert defined["job"]["current"]["value"] == DEFAULT_JOB
    known: set[str] = set(GRAFANA_VARIABLES)
    for name, variable in defined.items():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, name
            label_values_query(variable["query"])
            # A variable's query uses only the variables before it.
            assert variables_in(variable["query"]) <= known, name
        if variable.get("includeAll"):
            assert variable["allValue"] == ".*" and variable["multi"], name
        known.add(name)
    used = set()
    for panel, repeat in panels(model):
        used |= variables_in(json.dumps(panel)) - {"datasource"}
        if repeat:
            assert defined[repeat].get("multi"), f"{panel['title']} repeats over a single value"
    assert used <= known, f"undefined variables: {used - known}"
    assert used >= {"job", "instance"}


@ids
def test_panels_and_targets(uid: str) -> None:
    model = MODELS[uid]
    nested = (inner for row in model["panels"] for inner in row.get("panels", []))
    every = [*model["panels"], *nested]
    panel_ids = [panel["id"] for panel in every]
    assert len(panel_ids) == len(set(panel_ids)), "duplicate panel ids"
    assert all(isinstance(i, int) and i > 0 for i in panel_ids)
    for panel, _ in panels(model):
        title = panel["title"]
        assert title and panel["description"], panel
        assert panel["datasource"] == DATASOURCE, title
        targets = panel["targets"]
        assert targets, f"{title} has no target"
        assert len({t["refId"] for t in targets}) == len(targets), title
        for target in targets:
            assert target["datasource"] == DATASOURCE, title
            assert target["expr"].strip(), title


@ids
def test_every_selector_filters_on_job_and_instance(uid: str) -> None:
    offenders = {f"{q.panel} [{q.ref}]": missing for q in panel_queries(MODELS[uid])
                 if (missing := unfiltered_selectors(q.expr))}
    assert not offenders


def cells(panel: dict[str, Any]) -> set[tuple[int, int]]:
    grid = panel["gridPos"]
    return {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])}


@ids
def test_the_grid_has_no_overlap(uid: str) -> None:
    placed = MODELS[uid]["panels"]
    for panel in placed:
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["y"] >= 0
        assert grid["x"] + grid["w"] <= GRID_WIDTH, panel["title"]
    for first, second in itertools.combinations(placed, 2):
        assert not cells(first) & cells(second), (first["title"], second["title"])


def test_the_docs_name_existing_panels() -> None:
    titles = {m["title"].removeprefix("ArmoniK / "): m for m in MODELS.values()}
    # A panel named in the docs: *Dashboard > Panel*
    reference = re.compile(rf"\*({'|'.join(map(re.escape, titles))}) > ([^*]+)\*")
    found = 0
    for doc in ("runbook.md", "dashboards.md"):
        for board, panel in reference.findall((ROOT / "docs" / doc).read_text()):
            assert board in titles, f"{doc}: no dashboard {board!r}"
            names = {p["title"] for p in titles[board]["panels"]}
            assert any(name.split(":")[0] == panel or name == panel for name in names), (
                f"{doc}: no panel {panel!r} in {board}")
            found += 1
    assert found
