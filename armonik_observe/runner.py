"""Run the long-lived commands under the supervisor: simulator, exporter, or both (the demo)."""

from __future__ import annotations

import gc
import logging
import os
import secrets
import shlex
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from armonik_observe.config import (
    DemoPrometheusSettings,
    ServeSettings,
    SimulatorSettings,
    TraceReplaySettings,
)
from armonik_observe.dashboards.local_prometheus import LocalPrometheus
from armonik_observe.lifecycle import StartedStack
from armonik_observe.service import Exporter
from armonik_observe.simulator.server import Simulator
from armonik_observe.supervisor import supervise

if TYPE_CHECKING:  # the OpenTelemetry SDK loads only when traces are asked for
    from armonik_observe.traces.output import SpanCounts

DEMO_STOP_TIMEOUT_S = 60.0  # each of the demo's parts; the exporter's sinks flush in less

Echo = Callable[[str], None]


def tune_process() -> None:
    """Garbage-collector thresholds and GIL switch interval for a long-running exporter."""
    # Millions of long-lived records: frequent young collections only rescan them.
    gc.set_threshold(100_000, 50, 100)
    # The archive writer converts records in a thread; with the default 5 ms GIL switch
    # interval each of the event loop's wake-ups can wait that long (measured: p99 loop lag
    # 13-16 ms during a flush, 2-10 ms at 1 ms).
    sys.setswitchinterval(0.001)


def freeze_start_up_objects() -> None:
    """Move what start-up made (imports: some 100k objects) out of the collector's reach:
    they live as long as the process, and every full collection would scan them again (some
    40 ms idle, up to 165 ms under load, landing inside a scrape now and then)."""
    gc.collect()
    gc.freeze()


def command_name(argv0: str | None = None,
                 which: Callable[[str], str | None] = shutil.which) -> str:
    """How to run this command again from the same shell: its name when it is on PATH, else
    the path it was run by (`make demo` runs .venv/bin/armonik-observe), else `python -m`."""
    ran = Path(argv0 if argv0 is not None else sys.argv[0])
    found = which("armonik-observe")
    if found is not None and Path(found).resolve() == ran.resolve():
        return "armonik-observe"
    if ran.name == "armonik-observe":
        return shlex.quote(str(ran))
    return f"{shlex.quote(sys.executable)} -m armonik_observe.cli"


def build_simulator(settings: SimulatorSettings,
                    id_salt: Callable[[], int] = lambda: secrets.randbits(128)) -> Simulator:
    """A simulator from its settings; each run's ids are new (the seed decides the workload,
    not the ids: a second demo run never replaces the first's rows in one archive)."""
    return Simulator(
        settings.scenario,
        listen=settings.listen,
        speed=settings.speed,
        seed=settings.seed,
        rate=settings.rate,
        faults=settings.faults,
        record_events=False,
        ttl=settings.ttl.total_seconds(),
        id_salt=id_salt(),
    )


async def run_simulator(settings: SimulatorSettings, echo: Echo) -> None:
    """Serve a simulated control plane until Ctrl-C or the duration."""
    tune_process()
    simulator = build_simulator(settings)

    async def start() -> None:
        await simulator.start()
        freeze_start_up_objects()
        echo(f"simulator: scenario {settings.scenario.name} at x{settings.speed:g} "
             f"serving ArmoniK API on {simulator.endpoint} (Ctrl-C to stop)")

    await supervise(start, simulator.stop, settings.duration)


async def run_exporter(settings: ServeSettings, echo: Echo, duration: float | None) -> None:
    """Serve metrics for a control plane until Ctrl-C or the duration."""
    tune_process()
    exporter = Exporter(settings)

    async def start() -> None:
        await exporter.start()
        freeze_start_up_objects()
        echo(f"exporter: watching {settings.endpoint.url}, metrics on {exporter.http.url}/metrics")

    await supervise(start, exporter.stop, duration)


async def run_demo(
    simulator_settings: SimulatorSettings, serve: Callable[[str], ServeSettings], echo: Echo,
    prometheus: DemoPrometheusSettings | None = None,
) -> None:
    """The embedded simulator and the exporter in one process; with `prometheus`, a Prometheus
    scraping them with the shipped rules."""
    tune_process()
    logging.getLogger("armonik_observe").setLevel(logging.WARNING)
    simulator = build_simulator(simulator_settings)
    # Stopped last first, each on its own: one that fails to stop does not keep the others up.
    started = StartedStack(timeout=DEMO_STOP_TIMEOUT_S)

    async def start() -> None:
        await started.enter("simulator", simulator.start, simulator.stop)
        exporter = Exporter(serve(simulator.endpoint))
        await started.enter("exporter", exporter.start, exporter.stop)
        echo(f"demo: simulator ({simulator_settings.scenario.name} scenario at "
             f"x{simulator_settings.speed:g}) on {simulator.endpoint}")
        url = exporter.http.url
        echo(f"demo: status page on {url}/ - metrics on {url}/metrics")
        if prometheus is not None and prometheus.prometheus:
            local = LocalPrometheus(exporter.http.url.removeprefix("http://"),
                                    listen=prometheus.prometheus_listen)
            await started.enter("prometheus", local.start, local.stop)
            echo(f"demo: Prometheus on {local.url} (job metrics-exporter, with the recording and "
                 f"alerting rules: {local.url}/alerts)")
        archive = exporter.settings.archive
        if archive is not None:
            echo(f"demo: archive in {archive}/ - query it with: {command_name()} sql --archive "
                 f"{archive} \"SELECT status, count(*) FROM tasks GROUP BY ALL\"")
        if exporter.settings.traces_file is not None:
            echo(f"demo: spans in {exporter.settings.traces_file} (OTLP JSON lines; "
                 "--otlp-endpoint sends them to Jaeger or Tempo instead)")
        freeze_start_up_objects()
        echo("demo: Ctrl-C to stop")

    await supervise(start, started.close, simulator_settings.duration)


def replay_archive(archive: Path, sessions: Iterable[str], settings: TraceReplaySettings,
                   progress: Callable[[list[str]], Iterable[str]] = iter) -> dict[str, SpanCounts]:
    """Send the spans of archived sessions where the settings say; tell what became of them,
    per destination."""
    from armonik_observe.traces.output import Destination, SpanOutput, resource_attributes
    from armonik_observe.traces.replay import replay

    destination = Destination(endpoint=settings.otlp_endpoint, protocol=settings.otlp_protocol,
                              headers=settings.otlp_headers, file=settings.traces_file)
    resource = resource_attributes(str(archive), os.environ)
    # Offline, nothing is dropped: a full queue waits for the backend.
    output = SpanOutput(destination, sample_ratio=settings.trace_sample_ratio, resource=resource,
                        wait_when_full=True)
    try:
        replay(archive, sessions, output, phases=settings.trace_phases, progress=progress)
    finally:
        output.shutdown()  # sends what is queued first
    return output.counts()
