"""Validated, frozen settings: click parses, these check, constructors take keywords."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from armonik_observe.collectors.channel import Endpoint, EndpointError, TlsFiles, parse_endpoint
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


@dataclass(frozen=True)
class ServeSettings:
    """Everything `armonik-observe serve` needs, validated."""

    endpoint: Endpoint
    tls: TlsFiles
    listen: str = "0.0.0.0:9419"
    session_interval: float = 10.0
    count_interval: float = 10.0
    health_interval: float = 10.0
    facts_interval: float = 5.0
    max_followed_sessions: int = 200
    core_compat: bool = True
    stuck_threshold: float = 3600.0
    max_tracked_tasks: int = 2_000_000
    backfill: float = 0.0
    clock_skew: float = 30.0
    facts_overlap: float = 30.0
    max_event_lag: float = 120.0
    archive: Path | None = None
    archive_flush_interval: float = 5.0
    archive_retention: timedelta | None = None

    def __post_init__(self) -> None:
        parse_listen(self.listen)
        for name in ("session_interval", "count_interval", "health_interval", "facts_interval",
                     "stuck_threshold", "max_event_lag", "archive_flush_interval"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"--{name.replace('_', '-')}: must be positive")
        for name in ("max_followed_sessions", "max_tracked_tasks"):
            if getattr(self, name) < 1:
                raise SettingsError(f"--{name.replace('_', '-')}: must be at least 1")
        for name in ("backfill", "clock_skew", "facts_overlap"):
            if getattr(self, name) < 0:
                raise SettingsError(f"--{name.replace('_', '-')}: must not be negative")

    @classmethod
    def build(
        cls,
        *,
        endpoint: str,
        certificate_authority: Path | None = None,
        client_certificate: Path | None = None,
        client_key: Path | None = None,
        archive_retention: str | timedelta | None = None,
        **options: Any,
    ) -> ServeSettings:
        """Validate raw option values into settings."""
        if isinstance(archive_retention, str):
            archive_retention = parse_duration(archive_retention, "--archive-retention")
        try:
            parsed = parse_endpoint(endpoint)
        except EndpointError as error:
            raise SettingsError(f"--endpoint: {error}") from None
        if (client_certificate is None) != (client_key is None):
            raise SettingsError("--client-certificate and --client-key go together")
        tls = TlsFiles(certificate_authority, client_certificate, client_key)
        for option, path in (("--certificate-authority", certificate_authority),
                             ("--client-certificate", client_certificate),
                             ("--client-key", client_key)):
            if path is not None and not path.is_file():
                raise SettingsError(f"{option}: {path} is not a readable file")
        if not parsed.secure and any((certificate_authority, client_certificate, client_key)):
            raise SettingsError("TLS files were given but --endpoint is http://; use https://")
        return cls(endpoint=parsed, tls=tls, archive_retention=archive_retention, **options)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str, option: str) -> timedelta:
    """Parse `30d`, `12h`, `90m`, `45s` or `2w`."""
    number, unit = value[:-1], value[-1:]
    if unit not in _UNITS or not number.replace(".", "", 1).isdigit() or float(number) <= 0:
        raise SettingsError(f"{option}: expected a positive duration like 30d or 12h, got "
                            f"{value!r}")
    return timedelta(seconds=float(number) * _UNITS[unit])


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML or TOML config file whose keys are option names (dashes or underscores)."""
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except OSError as error:
        raise SettingsError(f"--config: cannot read {path}: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        first_line = str(error).splitlines()[0]
        raise SettingsError(f"--config: {path} is not valid: {first_line}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"--config: {path} must hold a mapping of option names to values")
    return {str(key).replace("-", "_"): value for key, value in data.items()}
