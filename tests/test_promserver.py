"""The Prometheus test harness against a tiny real target: scrape, query, rules, promtool."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promserver
import pytest
from prometheus_client import (
    CollectorRegistry,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from promserver import (
    DEFAULT_JOB,
    INSTALL_HINT,
    NEVER_SCRAPED,
    PrometheusError,
    PrometheusServer,
    promtool_check_metrics,
    promtool_check_rules,
    require_prometheus,
)

GAUGE_VALUE = 42.0
OBSERVATIONS = (0.1, 0.2, 0.3, 2.0)
BUCKETS = (0.25, 0.5, 1.0, 2.5)

RULES = """\
groups:
  - name: harness
    interval: 1s
    rules:
      - record: job:harness_temperature_celsius:doubled
        expr: 2 * harness_temperature_celsius
"""

BROKEN_RULES = """\
groups:
  - name: harness
    rules:
      - record: job:harness_temperature_celsius:doubled
        expr: 2 * (harness_temperature_celsius
"""


def harness_registry() -> CollectorRegistry:
    """Build a fresh registry with a gauge at GAUGE_VALUE and a histogram of OBSERVATIONS."""
    registry = CollectorRegistry()
    gauge = Gauge("harness_temperature_celsius", "A known value.", registry=registry)
    gauge.set(GAUGE_VALUE)
    histogram = Histogram(
        "harness_duration_seconds", "Known observations.", buckets=BUCKETS, registry=registry
    )
    for value in OBSERVATIONS:
        histogram.observe(value)
    return registry


@pytest.fixture(scope="module")
def registry() -> CollectorRegistry:
    """Provide the harness registry, shared by the module."""
    return harness_registry()


@pytest.fixture(scope="module")
def target(registry: CollectorRegistry) -> Iterator[str]:
    """Serve the registry over HTTP on a free loopback port; yield its host:port."""
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write the recording rules to a module-wide temporary file."""
    return write(tmp_path_factory.mktemp("rules") / "rules.yml", RULES)


@pytest.fixture(scope="module")
def prom(target: str, rules_file: Path) -> Iterator[PrometheusServer]:
    """Run one Prometheus for the module (its first scrape takes ~5 s), scraped once."""
    require_prometheus()
    with PrometheusServer(target, rule_files=[rules_file]) as server:
        server.wait_for_scrape(timeout=20)
        yield server


def write(path: Path, text: str) -> Path:
    """Write `text` to `path` and return the path."""
    path.write_text(text)
    return path


def value(sample: dict[str, Any]) -> float:
    """Return the float value of one instant-vector sample."""
    return float(sample["value"][1])


@pytest.mark.parametrize("ci", ["true", ""])
def test_require_prometheus_fails_when_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ci: str
) -> None:
    """A missing binary is a failure with the install hint, in CI or not: never a skip."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match=INSTALL_HINT):
        require_prometheus()


def test_the_target_is_up_under_the_keda_job_name(prom: PrometheusServer, target: str) -> None:
    """The one active target is healthy, scraped, and labelled with the default job."""
    require_prometheus()
    [scraped] = prom.targets()
    assert scraped["health"] == "up", scraped["lastError"]
    assert scraped["lastScrape"] != NEVER_SCRAPED
    assert scraped["labels"] == {"job": DEFAULT_JOB, "instance": target}
    assert scraped["scrapeUrl"] == f"http://{target}/metrics"


def test_a_gauge_and_a_histogram_read_back_through_promql(
    prom: PrometheusServer, target: str
) -> None:
    """A gauge and a histogram served by prometheus_client read back through PromQL."""
    require_prometheus()
    [gauge] = prom.query("harness_temperature_celsius")
    assert value(gauge) == GAUGE_VALUE
    assert gauge["metric"] == {
        "__name__": "harness_temperature_celsius",
        "job": DEFAULT_JOB,
        "instance": target,
    }
    [count] = prom.query("harness_duration_seconds_count")
    assert value(count) == len(OBSERVATIONS)
    [total] = prom.query("harness_duration_seconds_sum")
    assert value(total) == pytest.approx(sum(OBSERVATIONS))
    # Half of the 4 observations are <= 0.25: the median interpolates to that bucket's top.
    [median] = prom.query("histogram_quantile(0.5, harness_duration_seconds_bucket)")
    assert value(median) == pytest.approx(0.25)


def test_the_server_stops_and_removes_its_directory(target: str) -> None:
    """Leaving the context stops Prometheus and deletes its temporary directory."""
    require_prometheus()
    with PrometheusServer(target) as prom:
        directory, url = prom.directory, prom.url
        assert (directory / "prometheus.yml").is_file()
    assert not directory.exists()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/-/ready", timeout=2)


def test_a_bad_expression_raises_prometheus_error(prom: PrometheusServer) -> None:
    """The API's error status becomes a PrometheusError naming the error type."""
    require_prometheus()
    with pytest.raises(PrometheusError, match="bad_data"):
        prom.query("sum(")


def test_a_timed_out_wait_shows_the_last_result(prom: PrometheusServer) -> None:
    """wait_for gives up at its deadline, and its message carries the last result."""
    require_prometheus()
    with pytest.raises(TimeoutError, match="'42'"):
        prom.wait_for("harness_temperature_celsius", lambda result: False, timeout=0.3)


def test_a_recording_rule_is_loaded_and_evaluated(prom: PrometheusServer, rules_file: Path) -> None:
    """The rules file is listed by the server, and the recorded series appears."""
    require_prometheus()
    [group] = prom.rules()["groups"]
    assert group["name"] == "harness"
    assert group["file"] == str(rules_file.resolve())
    assert [rule["name"] for rule in group["rules"]] == ["job:harness_temperature_celsius:doubled"]
    [doubled] = prom.wait_for("job:harness_temperature_celsius:doubled", bool, timeout=20)
    assert value(doubled) == 2 * GAUGE_VALUE


def test_promtool_accepts_the_rules_file(tmp_path: Path) -> None:
    """The recording rules pass `promtool check rules`."""
    require_prometheus()
    ok, output = promtool_check_rules(write(tmp_path / "rules.yml", RULES))
    assert ok, output
    assert "SUCCESS: 1 rules found" in output, output


def test_promtool_rejects_a_broken_rules_file(tmp_path: Path) -> None:
    """A rule with invalid PromQL fails `promtool check rules`, naming the problem."""
    require_prometheus()
    ok, output = promtool_check_rules(write(tmp_path / "broken.yml", BROKEN_RULES))
    assert not ok
    assert "FAILED" in output, output


def test_a_port_taken_before_startup_is_retried(
    monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    """When the chosen port is taken (a bind race), the server starts again on another."""
    require_prometheus()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken, promserver.free_port()])
        monkeypatch.setattr(promserver, "free_port", lambda: next(ports))
        with PrometheusServer(target) as prom:
            assert prom.port != taken
            assert prom.query("vector(1)")[0]["value"][1] == "1"
            assert "address already in use" in (prom.directory / "prometheus-1.log").read_text()


def test_a_broken_rules_file_stops_the_server_from_starting(target: str, tmp_path: Path) -> None:
    """Prometheus exiting at startup raises PrometheusError with its log."""
    require_prometheus()
    broken = write(tmp_path / "broken.yml", BROKEN_RULES)
    with pytest.raises(PrometheusError, match="exited at startup"):  # noqa: SIM117
        with PrometheusServer(target, rule_files=[broken]):
            pass


def test_promtool_accepts_a_clean_exposition(registry: CollectorRegistry) -> None:
    """prometheus_client's output for the harness and a hand-written counter lint clean."""
    require_prometheus()
    ok, output = promtool_check_metrics(generate_latest(registry).decode())
    assert ok, output
    counter = (
        "# HELP armonik_tasks_total Tasks seen.\n"
        "# TYPE armonik_tasks_total counter\n"
        "armonik_tasks_total 3\n"
    )
    ok, output = promtool_check_metrics(counter)
    assert ok, output


def test_promtool_reports_a_counter_without_total() -> None:
    """A counter named without `_total` fails the lint, and the output says why."""
    require_prometheus()
    exposition = "# HELP armonik_tasks Tasks seen.\n# TYPE armonik_tasks counter\narmonik_tasks 3\n"
    ok, output = promtool_check_metrics(exposition)
    assert not ok
    assert 'armonik_tasks counter metrics should have "_total" suffix' in output, output
