"""Validated, frozen settings: click parses, these check, constructors take keywords."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from armonik_observe.simulator.builtin import BUILTIN, builtin_scenario
from armonik_observe.simulator.faults import FaultPlan, parse_faults
from armonik_observe.simulator.scenario import Scenario, load_scenario_file


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the option."""


def parse_listen(value: str, option: str = "--listen") -> tuple[str, int]:
    """Split host:port and check the port."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SettingsError(f"{option}: expected host:port, got {value!r}")
    return host, int(port)


def resolve_scenario(value: str) -> Scenario:
    """A built-in scenario name, or the path of a .yaml/.yml/.toml scenario file."""
    if value in BUILTIN:
        return builtin_scenario(value)
    path = Path(value)
    if path.suffix in (".yaml", ".yml", ".toml"):
        return load_scenario_file(path)
    return builtin_scenario(value)  # raises, listing the known names


@dataclass(frozen=True)
class SimulatorSettings:
    """Everything `armonik-observe simulate` needs."""

    listen: str
    scenario: Scenario
    seed: int | None
    speed: float
    rate: float | None
    faults: FaultPlan
    duration: float | None

    @classmethod
    def build(
        cls,
        *,
        listen: str,
        scenario: str,
        seed: int | None,
        speed: float,
        rate: float | None,
        faults: str,
        duration: float | None,
    ) -> SimulatorSettings:
        """Validate raw option values into settings."""
        parse_listen(listen)
        if speed <= 0:
            raise SettingsError(f"--speed: must be positive, got {speed}")
        if rate is not None and rate <= 0:
            raise SettingsError(f"--rate: must be positive, got {rate}")
        if duration is not None and duration <= 0:
            raise SettingsError(f"--duration: must be positive, got {duration}")
        return cls(
            listen=listen,
            scenario=resolve_scenario(scenario),
            seed=seed,
            speed=speed,
            rate=rate,
            faults=parse_faults(faults),
            duration=duration,
        )
