"""`armonik-observe serve` as a user runs it: one-line errors, env and config, a live run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "armonik_observe.cli"]
DEAD = "http://127.0.0.1:1"
# Environment variables the CLI reads: never inherited from the developer's shell.
OWN_ENV = ("AK_ENDPOINT", "AKCONFIG")
WAIT_S = 15.0


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in OWN_ENV and not k.startswith("ARMONIK_OBSERVE_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60,
                          env=clean_env(**env))


def serve(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli("serve", "--listen", "127.0.0.1:0", *args, **env)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


# -- invalid input ------------------------------------------------------------------------------


def test_a_negative_interval_is_refused() -> None:
    assert_one_line_error(serve("-e", DEAD, "--count-interval", "-1"), "--count-interval")


@pytest.mark.parametrize(("option", "value"), [("--count-interval", "nan"),
                                               ("--rpc-timeout", "inf"), ("--backfill", "nan"),
                                               ("--archive-retention", "9" * 400 + "d")])
def test_numbers_that_are_not_finite_are_refused(option: str, value: str) -> None:
    assert_one_line_error(serve("-e", DEAD, option, value), option)


def test_an_endpoint_without_scheme_is_refused() -> None:
    assert_one_line_error(serve("-e", "localhost:5001"), "--endpoint", "localhost:5001")


def test_a_client_certificate_needs_its_key(tmp_path: Path) -> None:
    certificate = tmp_path / "client.pem"
    certificate.write_text("not used")
    result = serve("-e", "https://127.0.0.1:1", "--client-certificate", str(certificate))
    assert_one_line_error(result, "--client-certificate", "--client-key")


def test_tls_files_need_an_https_endpoint(tmp_path: Path) -> None:
    authority = tmp_path / "ca.pem"
    authority.write_text("not used")
    result = serve("-e", DEAD, "--certificate-authority", str(authority))
    assert_one_line_error(result, "TLS", "https")


def test_a_listen_port_in_use_is_refused() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = run_cli("serve", "-e", DEAD, "--listen", address, "--duration", "5")
    assert_one_line_error(result, address)


@pytest.mark.parametrize(("name", "text"), [
    ("broken.yaml", "count-interval: [1\n"),
    ("broken.toml", "count-interval = \n"),
    ("list.yaml", "- count-interval\n"),
])
def test_a_malformed_config_file_is_refused(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert_one_line_error(serve("-e", DEAD, "-c", str(path)), "--config", str(path))


def test_a_missing_config_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    assert_one_line_error(serve("-e", DEAD, "-c", str(path)), "--config", str(path))


# -- environment and config file -----------------------------------------------------------------


def test_ak_endpoint_is_read() -> None:
    assert_one_line_error(serve(AK_ENDPOINT="localhost:5001"), "--endpoint", "localhost:5001")
    # A good one is taken too: the next problem is the interval, not a missing endpoint.
    result = serve("--count-interval", "-1", AK_ENDPOINT=DEAD)
    assert_one_line_error(result, "--count-interval")


def test_the_prefixed_endpoint_variable_is_read() -> None:
    result = serve(ARMONIK_OBSERVE_ENDPOINT="localhost:5001")
    assert_one_line_error(result, "--endpoint", "localhost:5001")


# --stuck-threshold is checked after --count-interval: when the environment is not read, the
# error names --stuck-threshold instead of hanging in a running exporter.
def test_options_are_read_from_the_documented_environment_variables() -> None:
    result = serve("-e", DEAD, "--stuck-threshold", "-1", ARMONIK_OBSERVE_COUNT_INTERVAL="-1")
    assert_one_line_error(result, "--count-interval")


def test_the_environment_wins_over_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("count-interval: 5\n")
    result = serve("-e", DEAD, "-c", str(config), "--stuck-threshold", "-1",
                   ARMONIK_OBSERVE_COUNT_INTERVAL="-1")
    assert_one_line_error(result, "--count-interval")


@pytest.mark.parametrize(("name", "text"), [
    ("config.yaml", "count-interval: -1\n"),
    ("config.toml", "count_interval = -1\n"),
])
def test_options_are_read_from_the_config_file(tmp_path: Path, name: str, text: str) -> None:
    config = tmp_path / name
    config.write_text(text)
    assert_one_line_error(serve("-e", DEAD, "-c", str(config)), "--count-interval")


def test_the_command_line_wins_over_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("count-interval: -1\nendpoint: localhost:5001\n")
    result = serve("-e", DEAD, "-c", str(config), "--count-interval", "5",
                   "--stuck-threshold", "-1")
    assert_one_line_error(result, "--stuck-threshold")


# -- a live exporter against a simulator -------------------------------------------------------


def launch_simulator(speed: str) -> tuple[subprocess.Popen[str], str]:
    """`simulate --scenario dag` in a subprocess on port 0; its http:// endpoint, read from its
    banner."""
    process = subprocess.Popen(
        [*CLI, "simulate", "--listen", "127.0.0.1:0", "--scenario", "dag", "--speed", speed],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=clean_env(),
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert "serving ArmoniK API on http://" in banner, banner
    except BaseException:
        process.kill()
        raise
    return process, banner.split(" on ")[1].split()[0]


@pytest.fixture(scope="module")
def simulator() -> Iterator[str]:
    """A simulator subprocess; yields its http:// endpoint."""
    process, endpoint = launch_simulator("20")
    try:
        yield endpoint
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
    finally:
        process.kill()


def start_serve(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Start `serve` and return it with its metrics base URL, read from its banner."""
    process = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=clean_env())
    assert process.stdout is not None
    banner = process.stdout.readline()
    assert banner.startswith("exporter: watching"), banner
    metrics = banner.rsplit("metrics on ", 1)[1].strip()
    assert metrics.endswith("/metrics")
    return process, metrics.removesuffix("/metrics")


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def poll_until(url: str, wanted: str) -> str:
    """GET `url` until its body contains `wanted` (bounded: an external process)."""
    deadline = time.monotonic() + WAIT_S
    body = ""
    while time.monotonic() < deadline:
        body = get(url)[1]
        if wanted in body:
            return body
        time.sleep(0.05)
    raise AssertionError(f"{wanted!r} never appeared at {url}:\n{body[:2000]}")


def stop(process: subprocess.Popen[str]) -> str:
    """Ctrl-C, as a user stops it: exit code 0 within the wait; its stderr."""
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=WAIT_S) == 0
    return process.communicate()[1]


def test_serve_exports_a_live_control_plane_then_stops(simulator: str) -> None:
    process, base = start_serve("serve", "-e", simulator, "--listen", "127.0.0.1:0")
    try:
        completed = 'armonik_tasks{partition="default",status="COMPLETED"}'
        body = poll_until(base + "/metrics", completed)
        assert "armonik_up 1.0" in body
        assert "armonik_default_tasks_queued" in body
        assert "Traceback" not in stop(process)
    finally:
        process.kill()


def test_an_https_endpoint_on_a_plaintext_server_is_reported_as_a_tls_mismatch(
    simulator: str,
) -> None:
    endpoint = simulator.replace("http://", "https://")
    process, base = start_serve("--log-level", "WARNING", "serve", "-e", endpoint,
                                "--listen", "127.0.0.1:0")
    try:
        health = poll_until(base + "/health", "last failure")
        assert json.loads(health)["ready"] is False
        assert get(base + "/health")[0] == 503
        assert "armonik_up 0.0" in get(base + "/metrics")[1]
        stderr = stop(process)
    finally:
        process.kill()
    ours = [line for line in stderr.splitlines() if "armonik_observe" in line]
    assert any("TLS" in line for line in ours), stderr


@pytest.mark.parametrize("value", ["http://[::1", "notaurl", "ftp://x:1", "http://h:99999", ""])
def test_a_malformed_otlp_endpoint_is_one_line(value: str) -> None:
    assert_one_line_error(serve("-e", DEAD, "--otlp-endpoint", value), "--otlp-endpoint")
    replay = run_cli("traces", "--archive", ".", "--otlp-endpoint", value)
    assert_one_line_error(replay, "--otlp-endpoint")


def test_a_traces_file_that_cannot_be_opened_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "no-such-directory" / "spans.jsonl"
    result = run_cli("serve", "-e", DEAD, "--listen", "127.0.0.1:0", "--traces-file", str(path),
                     "--duration", "5")
    assert_one_line_error(result, str(path), "No such file or directory")
