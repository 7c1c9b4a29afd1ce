"""Scenario files and built-ins: validated, and errors name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from armonik_observe.simulator.builtin import BUILTIN, builtin_scenario
from armonik_observe.simulator.scenario import ScenarioError, load_scenario_file

GOOD_YAML = """
name: mine
seed: 3
partitions:
  - {id: default, pods: 2}
sessions:
  - name: s
    partition: default
    graph: {kind: chain, tasks: 5}
    profile:
      processing: {kind: lognormal, mean: 1.5, spread: 0.4}
      error_rate: 0.1
    lifecycle: [{action: pause, at: 1}, {action: resume, at: 2}]
"""

GOOD_TOML = """
name = "toml"
[[partitions]]
id = "default"
[[sessions]]
name = "s"
partition = "default"
graph = { kind = "fanout", tasks = 4 }
"""


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_builtin_scenario_is_valid(name: str) -> None:
    scenario = builtin_scenario(name)
    assert scenario.name == name
    assert scenario.sessions


def test_demo_has_three_partitions_errors_and_retries() -> None:
    demo = builtin_scenario("demo")
    assert len(demo.partitions) == 3
    assert any(g.profile.error_rate > 0 and g.max_retries > 0 for g in demo.sessions)


def test_large_scenario_holds_at_least_a_million_tasks() -> None:
    large = builtin_scenario("large")
    assert sum(g.count * g.graph.tasks for g in large.sessions) >= 1_000_000


def test_yaml_and_toml_files_load(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD_YAML)
    (tmp_path / "b.toml").write_text(GOOD_TOML)
    yaml_scenario = load_scenario_file(tmp_path / "a.yaml")
    assert yaml_scenario.sessions[0].profile.processing.mean == 1.5
    assert [s.action for s in yaml_scenario.sessions[0].lifecycle] == ["pause", "resume"]
    assert load_scenario_file(tmp_path / "b.toml").sessions[0].graph.kind == "fanout"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (GOOD_YAML.replace("kind: chain", "kind: spiral"), "sessions[0].graph.kind"),
        (GOOD_YAML.replace("pods: 2", "pods: two"), "partitions[0].pods"),
        (GOOD_YAML.replace("error_rate: 0.1", "error_rate: 3"), "sessions[0].profile"),
        (GOOD_YAML.replace("seed: 3", "seeds: 3"), "seeds"),
        (GOOD_YAML.replace("partition: default", "partition: gpu"), "sessions[0].partition"),
        (GOOD_YAML.replace("kind: lognormal", "kind: zipf"), "sessions[0].profile.processing"),
        ("name: [unclosed", "not valid yaml"),
    ],
)
def test_a_malformed_file_names_the_file_and_the_field(
    tmp_path: Path, text: str, field: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as error:
        load_scenario_file(path)
    message = str(error.value)
    assert str(path) in message and field in message
    assert "\n" not in message


def test_an_unknown_builtin_lists_the_known_ones() -> None:
    with pytest.raises(ScenarioError, match="demo, steady, burst, dag, large"):
        builtin_scenario("nope")
