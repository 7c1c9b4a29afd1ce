"""`armonik-observe simulate` as a user runs it: served on a port, and clear one-line errors."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import click
import grpc
import pytest
from armonik.client import ArmoniKVersions

from armonik_observe.archive import open as open_archive
from armonik_observe.cli import main
from armonik_observe.config import ServeSettings, SimulatorSettings
from armonik_observe.traces.ids import trace_id

CLI = [sys.executable, "-m", "armonik_observe.cli"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_a_malformed_scenario_file_gives_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\npartitions: [{id: a, pods: -1}]\nsessions: []\n")
    result = run_cli("simulate", "--scenario", str(path), "--listen", "127.0.0.1:0")
    assert_one_line_error(result, str(path), "partitions[0].pods")


def test_an_unknown_scenario_name_is_refused() -> None:
    result = run_cli("simulate", "--scenario", "nosuch", "--listen", "127.0.0.1:0")
    assert_one_line_error(result, "unknown scenario 'nosuch'", "demo")


def test_a_bad_fault_spec_is_refused() -> None:
    result = run_cli("simulate", "--faults", "latency=soon", "--listen", "127.0.0.1:0")
    assert_one_line_error(result, "latency")


def test_a_port_in_use_is_refused() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("simulate", "--listen", f"127.0.0.1:{port}", "--duration", "5")
    assert_one_line_error(result, f"127.0.0.1:{port}")


def test_simulate_serves_the_api_until_interrupted() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [*CLI, "simulate", "--listen", "127.0.0.1:0", "--scenario", "dag", "--speed", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        endpoint = banner.split(" on ")[1].split()[0]
        with grpc.insecure_channel(endpoint.removeprefix("http://")) as channel:
            versions = ArmoniKVersions(channel).list_versions()
        assert versions["api"].startswith("3.")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    finally:
        process.kill()


def test_demo_serves_metrics_and_archives_until_its_duration(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    process = subprocess.Popen(
        [*CLI, "demo", "--listen", "127.0.0.1:0", "--duration", "6", "--archive", str(archive),
         "--speed", "20", "--traces-file", str(tmp_path / "spans.jsonl")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(2)]
        url = lines[1].split("metrics on ")[1].split()[0]
        body = ""
        for _ in range(200):  # bounded: the demo is an external process warming up
            with urllib.request.urlopen(url, timeout=5) as response:
                body = response.read().decode()
            if "armonik_up 1.0" in body:
                break
        assert "armonik_up 1.0" in body
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
    with open_archive(archive) as opened:
        (tasks,) = opened.connection.execute("SELECT count(*) FROM tasks").fetchone() or (0,)
    assert tasks > 0
    # The demo traces too: one OTLP JSON request a line, a span per archived task at least.
    requests = [json.loads(line) for line in (tmp_path / "spans.jsonl").read_text().splitlines()]
    spans = [span for request in requests for resource in request["resourceSpans"]
             for scope in resource["scopeSpans"] for span in scope["spans"]]
    assert sum(span["name"] == "task" for span in spans) == tasks
    # OTLP/JSON, as a collector reads it: ids in hex (the trace id derived from the session's),
    # enums as integers.
    for span in spans:
        attributes = {a["key"]: a["value"] for a in span["attributes"]}
        session = attributes["armonik.session.id"]["stringValue"]
        assert span["traceId"] == f"{trace_id(session):032x}"
        assert len(span["spanId"]) == 16 and int(span["spanId"], 16)
        assert isinstance(span["kind"], int)


@pytest.mark.parametrize(("speed", "shown"), [((), "x1"), (("--speed", "5"), "x5")])
def test_the_demo_runs_at_the_speed_asked_for(tmp_path: Path, speed: tuple[str, ...],
                                              shown: str) -> None:
    result = subprocess.run(
        [*CLI, "demo", "--listen", "127.0.0.1:0", "--duration", "0.5", "--archive",
         str(tmp_path / "archive"), "--traces-file", str(tmp_path / "spans.jsonl"), *speed],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert result.returncode == 0, result.stderr
    banner = result.stdout.splitlines()[0]
    assert f"demo scenario at {shown})" in banner, banner


def test_command_line_defaults_are_the_settings_defaults() -> None:
    for command, settings in ((main.commands["serve"], ServeSettings),
                              (main.commands["simulate"], SimulatorSettings)):
        declared = {f.name: f for f in dataclasses.fields(settings) if "help" in f.metadata}
        options = [p for p in command.params if p.name in declared]
        assert len(options) >= 6
        for option in options:
            spec = declared[str(option.name)]
            default = spec.metadata.get("cli_default", spec.default)
            assert option.default == default, (command.name, option.name)
            assert option.help == spec.metadata["help"]


def test_simulate_reads_its_options_from_a_config_file(tmp_path: Path) -> None:
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text("partitions: [{id: p}]\nsessions: [{name: s, partition: p}]\n")
    config = tmp_path / "simulator.yaml"
    config.write_text(f"scenario: {scenario}\nspeed: 7\nlisten: 127.0.0.1:0\nduration: 0.5\n")
    result = run_cli("simulate", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert "simulator: scenario tiny at x7 serving ArmoniK API on http://127.0.0.1:" in \
        result.stdout


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name, command in group.commands.items():
        found.append((f"{prefix}{name}", command))
        if isinstance(command, click.Group):
            found += _commands(command, f"{prefix}{name} ")
    return found


def test_every_command_and_option_says_what_it_does() -> None:
    undocumented = [(name, param.name) for name, command in [("", main), *_commands(main)]
                    for param in command.params
                    if isinstance(param, click.Option) and (param.hidden or not param.help)]
    assert not undocumented
    assert all(command.help for _, command in _commands(main))
    # The top-level help's promises each have their command.
    assert "metrics, traces, archive and analytics" in (main.help or "")
    assert {"serve", "traces", "archive", "analyze"} <= set(main.commands)
