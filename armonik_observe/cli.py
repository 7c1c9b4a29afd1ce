"""Command line: parse options, build settings, call the library. Nothing else lives here."""

from __future__ import annotations

import asyncio
import gc
import sys

import click

from armonik_observe import __version__
from armonik_observe.config import SettingsError, SimulatorSettings
from armonik_observe.simulator.faults import FaultSpecError
from armonik_observe.simulator.scenario import ScenarioError
from armonik_observe.simulator.server import Simulator, SimulatorError
from armonik_observe.supervisor import supervise

_USER_ERRORS = (SettingsError, ScenarioError, FaultSpecError, SimulatorError)


class UserError(click.ClickException):
    """Bad input: one line on stderr and exit code 2, never a traceback."""

    exit_code = 2

    def show(self, file: object = None) -> None:
        """Print the one-line message."""
        click.echo(f"armonik-observe: error: {self.message}", err=True)


@click.group(context_settings={"auto_envvar_prefix": "ARMONIK_OBSERVE"})
@click.version_option(__version__, prog_name="armonik-observe")
def main() -> None:
    """Observe ArmoniK control planes: metrics, traces, archive and analytics."""


def _simulator_options(function: click.decorators.FC) -> click.decorators.FC:
    options = [
        click.option("--scenario", default="demo", show_default=True,
                     help="demo, steady, burst, dag, large, or a YAML/TOML scenario file."),
        click.option("--seed", type=int, default=None, help="Random seed (default: scenario's)."),
        click.option("--speed", type=float, default=1.0, show_default=True,
                     help="Simulated seconds per real second."),
        click.option("--rate", type=float, default=None, help="Tasks/s of stream scenarios."),
        click.option("--faults", default="", help="Fault plan, e.g. 'cut-after=500,latency=20ms'."),
        click.option("--duration", type=float, default=None,
                     help="Stop after this many seconds (default: until Ctrl-C)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@main.command()
@click.option("--listen", default="127.0.0.1:5001", show_default=True, help="host:port to serve.")
@_simulator_options
def simulate(**options: object) -> None:
    """Serve a simulated ArmoniK control plane over gRPC."""
    settings = _build(SimulatorSettings.build, **options)
    _run(_serve_simulator(settings))


@main.command()
@click.option("--listen", default="127.0.0.1:0", show_default=True,
              help="host:port of the embedded simulator.")
@_simulator_options
def demo(**options: object) -> None:
    """Run the demo: the embedded simulator playing the demo scenario."""
    if options["speed"] == 1.0:
        options["speed"] = 5.0
    settings = _build(SimulatorSettings.build, **options)
    _run(_serve_simulator(settings))


def _build(builder: object, **options: object) -> SimulatorSettings:
    try:
        return builder(**options)  # type: ignore[operator]
    except _USER_ERRORS as error:
        raise UserError(str(error)) from None


def _run(coroutine: object) -> None:
    try:
        asyncio.run(coroutine)  # type: ignore[arg-type]
    except _USER_ERRORS as error:
        raise UserError(str(error)) from None
    except KeyboardInterrupt:
        sys.exit(130)


async def _serve_simulator(settings: SimulatorSettings) -> None:
    # The simulator holds millions of long-lived records: frequent full collections only
    # rescan them, so collect young objects far less often in this process.
    gc.set_threshold(100_000, 50, 100)
    simulator = Simulator(
        settings.scenario,
        listen=settings.listen,
        speed=settings.speed,
        seed=settings.seed,
        rate=settings.rate,
        faults=settings.faults,
        record_events=False,
    )

    async def start() -> None:
        await simulator.start()
        click.echo(
            f"simulator: scenario {settings.scenario.name} at x{settings.speed:g} "
            f"serving ArmoniK API on {simulator.endpoint} (Ctrl-C to stop)"
        )

    await supervise(start, simulator.stop, settings.duration)


if __name__ == "__main__":
    main()
