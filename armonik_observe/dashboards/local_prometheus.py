"""A Prometheus of its own, scraping the exporter with the shipped rules (the demo's).

The binary comes from the `prometheus` package (`scripts/ensure-prometheus` installs Debian's);
its configuration, rules and data live in a temporary directory removed at stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from armonik_observe.dashboards import rules
from armonik_observe.dashboards.promql import DEFAULT_JOB
from armonik_observe.lifecycle import AsyncService

READY_POLL_S = 0.1
STOP_TIMEOUT_S = 10.0


class PrometheusError(RuntimeError):
    """Prometheus is missing or did not start; the message says why in one line."""


def prometheus_config(targets: Sequence[str], rule_files: Sequence[str],
                      scrape_interval: str = "15s", job: str = DEFAULT_JOB) -> dict[str, Any]:
    """A prometheus.yml scraping the exporters under `job`, evaluating the rules as often."""
    return {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": list(rule_files),
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}],
    }


class LocalPrometheus(AsyncService):
    """Runs `prometheus` on `listen`, scraping `target` (host:port) every `scrape_interval`."""

    def __init__(self, target: str, *, listen: str = "127.0.0.1:9090",
                 scrape_interval: str = "5s", startup_timeout: float = 30.0,
                 binary: str | None = None) -> None:
        self.target = target
        self.listen = listen
        self.scrape_interval = scrape_interval
        self.startup_timeout = startup_timeout
        self._binary = binary
        self._directory: Path | None = None
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """Prometheus's web UI and API."""
        return f"http://{self.listen}"

    async def start(self) -> None:
        """Write the configuration and rules, start Prometheus and wait until it is ready."""
        binary = self._binary or shutil.which("prometheus")
        if binary is None:
            raise PrometheusError("prometheus is not installed (scripts/ensure-prometheus "
                                  "installs Debian's package)")
        _refuse_taken(self.listen)
        self._directory = directory = Path(tempfile.mkdtemp(prefix="armonik-prometheus-"))
        try:
            (directory / rules.RULES_FILE).write_text(rules.render(), encoding="utf-8")
            config = prometheus_config([self.target], [rules.RULES_FILE], self.scrape_interval)
            (directory / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
            with (directory / "prometheus.log").open("wb") as log:
                self._process = await asyncio.create_subprocess_exec(
                    binary, f"--config.file={directory / 'prometheus.yml'}",
                    f"--storage.tsdb.path={directory / 'data'}",
                    f"--web.listen-address={self.listen}", "--log.level=warn",
                    stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)
            await self._wait_ready()
        except BaseException:
            await self.stop()
            raise

    async def _wait_ready(self) -> None:
        process = self._process
        assert process is not None
        deadline = asyncio.get_running_loop().time() + self.startup_timeout
        async with aiohttp.ClientSession() as client:
            while not await _ready(client, f"{self.url}/-/ready"):
                # Wake at once if Prometheus exits (a bad flag, a port in use).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), READY_POLL_S)
                if process.returncode is not None:
                    raise PrometheusError(f"prometheus exited: {self._last_log_line()}")
                if asyncio.get_running_loop().time() > deadline:
                    raise PrometheusError(f"prometheus not ready after {self.startup_timeout}s")

    def _last_log_line(self) -> str:
        assert self._directory is not None
        lines = (self._directory / "prometheus.log").read_text(errors="replace").splitlines()
        return lines[-1] if lines else "no output"

    async def stop(self) -> None:
        """Stop Prometheus (SIGTERM, then SIGKILL) and remove its directory; idempotent."""
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                process.kill()
                await process.wait()
        directory, self._directory = self._directory, None
        if directory is not None:
            await asyncio.to_thread(shutil.rmtree, directory, True)


def _refuse_taken(listen: str) -> None:
    """Refuse a port another server listens on: its /-/ready would pass for ours."""
    host, _, port = listen.rpartition(":")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Prometheus binds
        try:
            probe.bind((host.strip("[]") or "0.0.0.0", int(port)))
        except OSError as error:
            raise PrometheusError(f"--prometheus-listen {listen}: {error.strerror}") from None


async def _ready(client: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with client.get(url, timeout=aiohttp.ClientTimeout(total=1)) as response:
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False
