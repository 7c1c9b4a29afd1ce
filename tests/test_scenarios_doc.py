"""docs/scenarios.md: every field of a scenario is documented, and every example loads and plays."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from armonik_observe.model import TaskStatus
from armonik_observe.simulator.profile import Distribution, TaskProfile
from armonik_observe.simulator.scenario import (
    GRAPH_KINDS,
    Application,
    GraphSpec,
    LifecycleStep,
    PartitionSpec,
    Scenario,
    SessionGroup,
    load_scenario_file,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "scenarios.md"
EXAMPLES = re.findall(r"```(yaml|toml)\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def example_file(tmp_path: Path, index: int) -> Path:
    kind, text = EXAMPLES[index]
    path = tmp_path / f"example-{index}.{kind}"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", [Scenario, PartitionSpec, SessionGroup, GraphSpec,
                                  LifecycleStep, Application, TaskProfile, Distribution])
def test_every_field_is_documented(kind: Any) -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [f.name for f in dataclasses.fields(kind) if f"| `{f.name}` |" not in text]
    assert not missing, (kind.__name__, missing)


def test_there_is_an_example_per_graph_shape(tmp_path: Path) -> None:
    kinds = {group.graph.kind for index in range(len(EXAMPLES))
             for group in load_scenario_file(example_file(tmp_path, index)).sessions}
    assert kinds == set(GRAPH_KINDS)


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
async def test_each_example_loads_and_plays(manual_sim: Any, tmp_path: Path, index: int) -> None:
    scenario = load_scenario_file(example_file(tmp_path, index))
    async with manual_sim(scenario) as (sim, _):
        await sim.advance(max(g.start for g in scenario.sessions) + 60)
        tasks = sim.true_tasks()
        groups = {s.options.options["group"] for s in sim.true_sessions()}
    assert groups == {g.name for g in scenario.sessions}
    assert any(t.status == TaskStatus.COMPLETED for t in tasks)
    for group in scenario.sessions:
        mine = [t for t in tasks if t.options.options["group"] == group.name]
        graph = group.graph
        if graph.kind == "fanout":  # the aggregator reads every child's output
            assert max(len(t.data_dependencies) for t in mine) == graph.tasks
        if graph.kind == "chain":
            assert sorted(len(t.data_dependencies) for t in mine)[:2] == [0, 1]
        if graph.kind == "subtasking":
            assert max(len(t.parent_task_ids) for t in mine) == graph.depth
        if graph.kind == "stream":
            assert len(mine) >= graph.rate * 60
