"""`armonik-observe demo --prometheus`: a Prometheus wired to the demo's exporter and the shipped
rules, its URL printed beside the exporter's, stopped and cleaned up with the demo."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from promserver import free_port, require_prometheus
from test_cli_simulate import assert_one_line_error, run_cli

from armonik_observe.dashboards import rules

CLI = [sys.executable, "-m", "armonik_observe.cli"]
WAIT_S = 45.0


def api(url: str, path: str, **params: str) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{url}/api/v1/{path}{query}", timeout=5) as response:
        return json.loads(response.read())["data"]


def wait_for_up(url: str) -> list[dict[str, Any]]:
    """Query until Prometheus has scraped the exporter and the exporter reached the plane."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:  # bounded: Prometheus scrapes on its own schedule
        result: list[dict[str, Any]] = api(url, "query", query='armonik_up{job="metrics-exporter"}'
                                           )["result"]
        if result and result[0]["value"][1] == "1":
            return result
        time.sleep(0.5)
    raise AssertionError(f"{url} never scraped the demo's exporter")


def test_demo_runs_prometheus_with_the_rules(tmp_path: Path) -> None:
    require_prometheus()
    listen = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [*CLI, "demo", "--prometheus", "--prometheus-listen", listen, "--listen", "127.0.0.1:0",
         "--speed", "10", "--archive", str(tmp_path / "archive")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        assert "metrics on http://127.0.0.1:" in lines[1], lines
        assert lines[2].startswith(f"demo: Prometheus on http://{listen} "), lines
        url = f"http://{listen}"
        (up,) = wait_for_up(url)
        assert up["metric"]["instance"] == lines[1].split("metrics on http://")[1].split("/")[0]
        groups = api(url, "rules")["groups"]
        assert {g["name"] for g in groups} == {"armonik-observe.rules", "armonik-observe.alerts"}
        loaded = sum(len(g["rules"]) for g in groups)
        assert loaded == sum(len(g["rules"]) for g in rules.rule_groups()["groups"])
        rules_dir = Path(groups[0]["file"]).parent
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
    assert not rules_dir.exists(), "the demo's Prometheus left its directory behind"
    with pytest.raises(urllib.error.URLError):  # stopped with the demo
        api(url, "query", query="up")


def test_demo_without_prometheus_installed_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CLI, "demo", "--prometheus", "--listen", "127.0.0.1:0", "--duration", "5",
         "--archive", str(tmp_path / "archive")], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PATH": str(tmp_path)})  # no prometheus on PATH
    assert_one_line_error(result, "prometheus is not installed", "scripts/ensure-prometheus")


def test_a_bad_prometheus_address_is_refused() -> None:
    result = run_cli("demo", "--prometheus", "--prometheus-listen", "nowhere")
    assert_one_line_error(result, "--prometheus-listen", "nowhere")


def test_a_prometheus_port_in_use_is_one_line(tmp_path: Path) -> None:
    """Another server on the port would answer /-/ready for the demo's Prometheus."""
    require_prometheus()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        result = run_cli("demo", "--prometheus", "--prometheus-listen", listen, "--listen",
                         "127.0.0.1:0", "--duration", "5", "--archive", str(tmp_path / "a"))
    assert_one_line_error(result, "--prometheus-listen", listen, "in use")
