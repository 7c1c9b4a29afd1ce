"""A real Prometheus for tests: run it on a free port, scrape a target, query it; run promtool.

Not a test module. The binaries come from the `prometheus` package (`scripts/ensure-prometheus`
installs it); `require_prometheus()` skips a test when they are missing, or fails it under CI.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest
import yaml

INSTALL_HINT = "prometheus is not installed: run scripts/ensure-prometheus"
DEFAULT_JOB = "metrics-exporter"
NEVER_SCRAPED = "0001-01-01T00:00:00Z"
POLL_INTERVAL = 0.1
HTTP_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
PROMTOOL_TIMEOUT = 30.0
BIND_ATTEMPTS = 3
ADDRESS_IN_USE = "address already in use"


class PrometheusError(RuntimeError):
    """Prometheus failed to start or answered an API call with an error."""


def find_prometheus() -> tuple[Path, Path] | None:
    """Return the paths of `prometheus` and `promtool`, or None if either is not on PATH."""
    prometheus = shutil.which("prometheus")
    promtool = shutil.which("promtool")
    if prometheus is None or promtool is None:
        return None
    return Path(prometheus), Path(promtool)


def require_prometheus() -> tuple[Path, Path]:
    """Return the binaries' paths; fail the test when they are missing (`make test` installs
    them), so a missing Prometheus is never mistaken for a passing suite."""
    found = find_prometheus()
    if found is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return found


def free_port() -> int:
    """Return a loopback port that was free a moment ago (bind to port 0, then close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _promtool() -> Path:
    """Return the path of `promtool`, or raise with the install hint."""
    path = shutil.which("promtool")
    if path is None:
        raise FileNotFoundError(INSTALL_HINT)
    return Path(path)


def _run_promtool(args: Sequence[str], stdin: str | None = None) -> tuple[bool, str]:
    """Run promtool with `args`; return (exit code was 0, stdout and stderr together)."""
    result = subprocess.run(
        [str(_promtool()), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT,
        check=False,
    )
    output = "\n".join(part.strip() for part in (result.stdout, result.stderr) if part.strip())
    return result.returncode == 0, output


def promtool_check_metrics(exposition: str) -> tuple[bool, str]:
    """Lint a text exposition with `promtool check metrics`; return (ok, promtool's output).

    promtool exits non-zero on lint problems too (a counter without `_total`, a missing HELP,
    a gauge named `*_gauge`), so the output is what tells a test what to fix.
    """
    return _run_promtool(["check", "metrics"], stdin=exposition)


def promtool_check_rules(path: Path) -> tuple[bool, str]:
    """Check a rules file with `promtool check rules`; return (ok, promtool's output)."""
    return _run_promtool(["check", "rules", str(path)])


def scrape_config(
    target: str,
    *,
    job_name: str,
    scrape_interval: str,
    metrics_path: str,
    rule_files: Sequence[Path],
) -> dict[str, Any]:
    """Build a prometheus.yml scraping `target` (host:port), rules evaluated as often."""
    return {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": scrape_interval,
        },
        "rule_files": [str(Path(path).resolve()) for path in rule_files],
        "scrape_configs": [
            {
                "job_name": job_name,
                "metrics_path": metrics_path,
                "static_configs": [{"targets": [target]}],
            }
        ],
    }


def _no_proxy_opener() -> urllib.request.OpenerDirector:
    """Return a urllib opener that ignores *_proxy variables (the server is on loopback)."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


class PrometheusServer:
    """A real Prometheus on a free loopback port, scraping one target, as a context manager.

    Startup takes well under a second, but Prometheus 2.x applies discovered targets on a
    5-second tick, so the first scrape comes about 5 s after the start whatever the
    `scrape_interval`: share one server among the tests of a module when you can.

    >>> with PrometheusServer("127.0.0.1:8000") as prom:  # doctest: +SKIP
    ...     prom.wait_for_scrape()
    ...     prom.query("up")
    """

    def __init__(
        self,
        target: str,
        *,
        job_name: str = DEFAULT_JOB,
        scrape_interval: str = "1s",
        metrics_path: str = "/metrics",
        rule_files: Sequence[Path] = (),
        startup_timeout: float = 20.0,
    ) -> None:
        """Describe the server; nothing starts before `__enter__`."""
        self.target = target
        self.job_name = job_name
        self.config = scrape_config(
            target,
            job_name=job_name,
            scrape_interval=scrape_interval,
            metrics_path=metrics_path,
            rule_files=rule_files,
        )
        self.startup_timeout = startup_timeout
        self.port = 0
        self._directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._opener = _no_proxy_opener()

    @property
    def url(self) -> str:
        """Return the server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def directory(self) -> Path:
        """Return the temporary directory holding the config, the TSDB and the log."""
        if self._directory is None:
            raise PrometheusError("the server is not running")
        return self._directory

    def __enter__(self) -> Self:
        """Start Prometheus and wait until it is ready; clean up if that fails."""
        if self._directory is not None:
            raise PrometheusError("the server is already running")
        prometheus, _ = require_prometheus()
        self._directory = Path(tempfile.mkdtemp(prefix="promserver-"))
        try:
            config_path = self._directory / "prometheus.yml"
            config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
            self._start(prometheus, config_path)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server and remove its directory."""
        self.stop()

    def _start(self, prometheus: Path, config_path: Path) -> None:
        """Launch Prometheus on a free port, retrying when another process takes the port."""
        for attempt in range(1, BIND_ATTEMPTS + 1):
            self.port = free_port()
            self._launch(prometheus, config_path, attempt)
            if self._wait_ready():
                return
            if ADDRESS_IN_USE not in self.log() or attempt == BIND_ATTEMPTS:
                raise PrometheusError(f"prometheus exited at startup:\n{self._log_tail()}")
            self._terminate()

    def _launch(self, prometheus: Path, config_path: Path, attempt: int) -> None:
        """Start the process, its output going to a log file in the directory."""
        self._log_path = self.directory / f"prometheus-{attempt}.log"
        command = [
            str(prometheus),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={self.directory / f'data-{attempt}'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=info",
        ]
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    def _wait_ready(self) -> bool:
        """Poll `/-/ready`; True once ready, False if the process exited, raise on timeout."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False
            if self._is_ready():
                return True
            time.sleep(POLL_INTERVAL / 2)
        raise PrometheusError(
            f"prometheus not ready after {self.startup_timeout}s:\n{self._log_tail()}"
        )

    def _is_ready(self) -> bool:
        """Return whether `/-/ready` answers 200."""
        try:
            with self._opener.open(f"{self.url}/-/ready", timeout=1.0) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """Terminate the process (kill it if it lingers) and remove the directory."""
        self._terminate()
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
        self._directory = None
        self._log_path = None

    def _terminate(self) -> None:
        """Stop the process: SIGTERM, bounded wait, then SIGKILL."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)

    def log(self) -> str:
        """Return what Prometheus has logged so far (empty when not started)."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        return self._log_path.read_text(errors="replace")

    def _log_tail(self, lines: int = 20) -> str:
        """Return the last lines of the log, for error messages."""
        return "\n".join(self.log().splitlines()[-lines:])

    def api(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET `/api/v1/<path>` and return its `data`; raise PrometheusError on an error status."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with self._opener.open(url, timeout=HTTP_TIMEOUT) as response:
                body = response.read()
        except urllib.error.HTTPError as err:  # 4xx/5xx still carry the JSON error
            body = err.read()
        try:
            payload = json.loads(body)
        except ValueError as err:
            raise PrometheusError(f"{url}: not JSON: {body[:200]!r}") from err
        if payload.get("status") != "success":
            raise PrometheusError(f"{url}: {payload.get('errorType')}: {payload.get('error')}")
        return payload["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Run an instant query and return `data.result` (a vector's samples, for instance)."""
        data = self.api("query", {"query": expr})
        result: list[dict[str, Any]] = data["result"]
        return result

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 30,
    ) -> list[dict[str, Any]]:
        """Query `expr` until `predicate` holds on the result; return it, or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if predicate(result):
                return result
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{expr!r}: predicate still false after {timeout}s: {result}")
            time.sleep(POLL_INTERVAL)

    def targets(self) -> list[dict[str, Any]]:
        """Return the active targets (labels, health, lastScrape, lastError, ...)."""
        data = self.api("targets", {"state": "active"})
        active: list[dict[str, Any]] = data["activeTargets"]
        return active

    def wait_for_scrape(self, timeout: float = 30) -> dict[str, Any]:
        """Wait until the target is up and scraped, with its samples queryable; return it.

        The target's health is updated before the scrape's samples are committed, so this
        also waits for `up{job=...}` to read 1: it is committed with the scraped samples.
        """
        deadline = time.monotonic() + timeout
        target = self._wait_target_up(timeout)
        remaining = max(deadline - time.monotonic(), POLL_INTERVAL)
        self.wait_for(f'up{{job="{self.job_name}"}} == 1', bool, remaining)
        return target

    def _wait_target_up(self, timeout: float) -> dict[str, Any]:
        """Poll the targets until ours is healthy and has been scraped at least once."""
        deadline = time.monotonic() + timeout
        while True:
            ours = [t for t in self.targets() if t["labels"].get("job") == self.job_name]
            for target in ours:
                if target["health"] == "up" and target["lastScrape"] != NEVER_SCRAPED:
                    return target
            if time.monotonic() >= deadline:
                raise TimeoutError(f"target {self.target} not scraped after {timeout}s: {ours}")
            time.sleep(POLL_INTERVAL)

    def rules(self) -> dict[str, Any]:
        """Return `/api/v1/rules` data: `{"groups": [{"name", "file", "rules": [...]}, ...]}`."""
        data: dict[str, Any] = self.api("rules")
        return data
