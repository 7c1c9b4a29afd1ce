"""Validated, frozen settings: click parses, these check, constructors take keywords."""

from __future__ import annotations

import contextlib
import math
import shutil
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from armonik_observe.archive.retired import DEFAULT_GRACE
from armonik_observe.collectors.channel import Endpoint, EndpointError, TlsFiles, parse_endpoint
from armonik_observe.simulator.builtin import BUILTIN, builtin_scenario
from armonik_observe.simulator.faults import FaultPlan, parse_faults
from armonik_observe.simulator.scenario import Scenario, load_scenario_file
from armonik_observe.simulator.store import DEFAULT_TTL_US
from armonik_observe.traces import FILE, GRPC, OTLP, PROTOCOLS

DEFAULT_TTL = timedelta(microseconds=DEFAULT_TTL_US)


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


def setting(default: Any, help: str) -> Any:
    """A setting's default and its command-line help, declared once: the CLI reads both."""
    return field(default=default, metadata={"help": help})


# Deadlines of the calls the exporter makes, in seconds; `default` covers every other RPC.
# CountTasksByStatus and ListTasksDetailed are the slow ones on a busy control plane.
RPC_TIMEOUTS: Mapping[str, float] = MappingProxyType({
    "default": 30.0, "CheckHealth": 10.0, "ListVersions": 10.0, "ListPartitions": 10.0,
    "CountTasksByStatus": 60.0, "ListTasksDetailed": 60.0,
})
RPC_NAMES = ("CheckHealth", "CountTasksByStatus", "ListPartitions", "ListResults",
             "ListSessions", "ListTasks", "ListTasksDetailed", "ListVersions")


@dataclass(frozen=True)
class SimulatorSettings:
    """Everything `armonik-observe simulate` needs."""

    listen: str = setting("127.0.0.1:5001", "host:port to serve.")
    scenario: Scenario = field(default_factory=partial(builtin_scenario, "demo"), metadata={
        "help": "demo, steady, burst, dag, large, or a YAML/TOML scenario file "
                "(docs/scenarios.md).",
        "cli_default": "demo", "cli_type": str})
    seed: int | None = setting(None, "Random seed (default: the scenario's).")
    speed: float = setting(1.0, "Simulated seconds per real second.")
    rate: float | None = setting(None, "Tasks/s of stream scenarios.")
    faults: FaultPlan = field(default_factory=FaultPlan, metadata={
        "help": "Fault plan, e.g. 'cut-after=500,latency=20ms'.", "cli_default": "",
        "cli_type": str})
    duration: float | None = setting(None, "Stop after this many seconds (default: until "
                                           "Ctrl-C).")
    ttl: timedelta = field(default=DEFAULT_TTL, metadata={
        "help": "How long the plane keeps a task after it ends (simulated time), as a real "
                "one's TTL does: seconds or a duration such as 60s or 10d.",
        "cli_type": str, "cli_default": "10d"})

    @classmethod
    def build(
        cls, *, scenario: str, faults: str, ttl: str | timedelta = DEFAULT_TTL, **options: Any
    ) -> SimulatorSettings:
        """Validate raw option values into settings."""
        parse_listen(options.get("listen", cls.listen))
        for name in ("speed", "rate", "duration"):
            value = options.get(name)
            if value is not None and (not value > 0 or not math.isfinite(value)):
                raise SettingsError(f"--{name}: must be a positive number, got {value}")
        if isinstance(ttl, str):
            ttl = parse_seconds_or_duration(ttl, "--ttl")
        return cls(scenario=resolve_scenario(scenario), faults=parse_faults(faults), ttl=ttl,
                   **options)


@dataclass(frozen=True)
class ServeSettings:
    """Everything `armonik-observe serve` needs, validated."""

    endpoint: Endpoint
    tls: TlsFiles
    listen: str = setting("0.0.0.0:9419", "host:port of the HTTP server: /metrics, the status "
                                          "page /, /health.")
    session_interval: float = setting(10.0, "Seconds between ListSessions passes.")
    session_resync_interval: float = setting(3600.0, "Seconds between recounts of the ended "
                                                     "sessions (a query over all history).")
    count_interval: float = setting(10.0, "Seconds between CountTasksByStatus polls.")
    health_interval: float = setting(10.0, "Seconds between CheckHealth polls.")
    facts_interval: float = setting(5.0, "Seconds between ListTasks passes for ended tasks.")
    facts_overlap: float = setting(30.0, "Seconds re-read below the ended_at watermark (late "
                                         "writes).")
    backfill: float = setting(0.0, "Seconds of task ends before the exporter's first start to "
                                   "count too.")
    clock_skew: float = setting(30.0, "Seconds the control plane's clock may be behind the "
                                      "exporter's: ends that recent before the first start "
                                      "count too.")
    max_followed_sessions: int = setting(200, "Event streams at most; the newest sessions are "
                                              "followed.")
    max_tracked_tasks: int = setting(2_000_000, "In-flight tasks the exporter keeps state for, "
                                                "at most.")
    stuck_threshold: float = setting(3600.0, "Seconds in one status before a task is stuck "
                                             "(dispatched or processing: its max_duration, "
                                             "when set).")
    max_event_lag: float = setting(120.0, "Seconds a session's stream may fall behind before "
                                          "it is degraded to counts and task facts.")
    session_deadline_option: str = setting("deadline", "Task option of a session holding its "
                                                       "deadline (an RFC 3339 time), exported as "
                                                       "armonik_session_deadline_timestamp_seconds"
                                                       "; empty: none.")
    rpc_timeouts: Mapping[str, float] = field(default_factory=lambda: RPC_TIMEOUTS, metadata={
        "help": "Deadline of control-plane calls: SECONDS for every call, or RPC=SECONDS for "
                "one (repeatable), e.g. --rpc-timeout CheckHealth=5. Defaults: " + ", ".join(
                    f"{name} {value:g}s" for name, value in RPC_TIMEOUTS.items()) + ".",
        "cli_name": "rpc_timeout", "cli_default": (), "multiple": True})
    archive: Path | None = None
    archive_flush_interval: float = setting(5.0, "Seconds between archive writes (what a crash "
                                                 "may lose).")
    archive_retention: timedelta | None = field(default=None, metadata={
        "help": "Remove archive partitions older than this, e.g. 30d or 12h.", "cli_type": str})
    archive_grace: timedelta = field(default=DEFAULT_GRACE, metadata={
        "help": "How long files that compaction or retention replace stay readable for "
                "readers opened before, e.g. 1h or 30m.", "cli_type": str, "cli_default": "1h"})
    core_compat: bool = setting(True, "Also expose the official exporter's "
                                      "armonik_*_tasks_<status> names.")
    # -- traces (on with an OTLP endpoint or a traces file) --------------------------------
    otlp_endpoint: str | None = field(default=None, metadata={
        "help": "Send a span per task attempt to this OTLP endpoint (traces are off without "
                "one, or a --traces-file); env OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT too.",
        "envvars": ("OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "OTEL_EXPORTER_OTLP_ENDPOINT")})
    otlp_protocol: str = field(default=GRPC, metadata={
        "help": "OTLP transport; env OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL too.",
        "choices": PROTOCOLS, "envvars": ("OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                                          "OTEL_EXPORTER_OTLP_PROTOCOL")})
    otlp_headers: tuple[tuple[str, str], ...] = field(default=(), metadata={
        "help": "A header K=V sent with every export (repeatable); env "
                "OTEL_EXPORTER_OTLP_[TRACES_]HEADERS too (K=V,K2=V2).",
        "cli_name": "otlp_header", "cli_type": str, "cli_default": (), "multiple": True,
        "envvars": ("OTLP_HEADER", "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                    "OTEL_EXPORTER_OTLP_HEADERS")})
    traces_file: Path | None = field(default=None, metadata={
        "help": "Append spans to this file as OTLP JSON lines (debugging, the demo)."})
    trace_phases: bool = setting(True, "Child spans for each task's phases (queued, "
                                       "acquisition, fetch, processing, finalize).")
    trace_sample_ratio: float = setting(1.0, "Share of sessions traced, decided on the trace "
                                             "id: all of a session's spans or none.")
    max_spans_per_session: int = setting(100_000, "Spans written for one session at most (the "
                                                  "rest are counted as dropped).")
    trace_session_max_age: timedelta = field(default=timedelta(hours=24), metadata={
        "help": "A session still open this long after its creation gets its root span then, "
                "ending at that age.", "cli_type": str, "cli_default": "24h"})

    @property
    def traces(self) -> bool:
        """Whether spans are written (an OTLP endpoint or a traces file is set)."""
        return self.otlp_endpoint is not None or self.traces_file is not None

    def __post_init__(self) -> None:
        parse_listen(self.listen)
        check_otlp_endpoint(self.otlp_endpoint)
        for name in ("session_interval", "session_resync_interval", "count_interval",
                     "health_interval", "facts_interval",
                     "stuck_threshold", "max_event_lag", "archive_flush_interval"):
            if not getattr(self, name) > 0 or not math.isfinite(getattr(self, name)):
                raise SettingsError(f"--{name.replace('_', '-')}: must be a positive number")
        for name in ("max_followed_sessions", "max_tracked_tasks"):
            if getattr(self, name) < 1:
                raise SettingsError(f"--{name.replace('_', '-')}: must be at least 1")
        for name in ("backfill", "clock_skew", "facts_overlap"):
            if not getattr(self, name) >= 0 or not math.isfinite(getattr(self, name)):
                raise SettingsError(f"--{name.replace('_', '-')}: must be a number, not negative")
        if not 0.0 <= self.trace_sample_ratio <= 1.0:
            raise SettingsError("--trace-sample-ratio: must be between 0 and 1")
        if self.max_spans_per_session < 1:
            raise SettingsError("--max-spans-per-session: must be at least 1")
        if self.otlp_protocol not in PROTOCOLS:
            raise SettingsError(f"--otlp-protocol: expected {' or '.join(PROTOCOLS)}, got "
                                f"{self.otlp_protocol!r}")

    def rpc_timeout(self, rpc: str) -> float:
        """The deadline of one RPC, in seconds."""
        return self.rpc_timeouts.get(rpc, self.rpc_timeouts["default"])

    @classmethod
    def build(
        cls,
        *,
        endpoint: str,
        certificate_authority: Path | None = None,
        client_certificate: Path | None = None,
        client_key: Path | None = None,
        archive_retention: str | timedelta | None = None,
        archive_grace: str | timedelta = "1h",
        trace_session_max_age: str | timedelta = "24h",
        otlp_header: tuple[str, ...] | list[str] = (),
        rpc_timeout: tuple[str, ...] | list[str] = (),
        **options: Any,
    ) -> ServeSettings:
        """Validate raw option values into settings."""
        if isinstance(archive_retention, str):
            archive_retention = parse_duration(archive_retention, "--archive-retention")
        if isinstance(archive_grace, str):
            archive_grace = parse_duration(archive_grace, "--archive-grace")
        if isinstance(trace_session_max_age, str):
            trace_session_max_age = parse_duration(trace_session_max_age,
                                                   "--trace-session-max-age")
        options["otlp_headers"] = parse_headers(otlp_header)
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
        try:
            tls.check()
        except EndpointError as error:
            raise SettingsError(str(error)) from None
        if rpc_timeout:
            options["rpc_timeouts"] = parse_rpc_timeouts(rpc_timeout)
        return cls(endpoint=parsed, tls=tls, archive_retention=archive_retention,
                   archive_grace=archive_grace, trace_session_max_age=trace_session_max_age,
                   **options)


@dataclass(frozen=True)
class TraceReplaySettings:
    """What `armonik-observe traces` needs: where spans go, and which spans."""

    otlp_endpoint: str | None
    otlp_protocol: str
    otlp_headers: tuple[tuple[str, str], ...]
    traces_file: Path | None
    trace_phases: bool
    trace_sample_ratio: float

    @classmethod
    def build(cls, *, otlp_header: tuple[str, ...] | list[str] = (),
              **options: Any) -> TraceReplaySettings:
        """Validate raw option values into settings."""
        settings = cls(otlp_headers=parse_headers(otlp_header), **options)
        check_otlp_endpoint(settings.otlp_endpoint)
        if settings.otlp_endpoint is None and settings.traces_file is None:
            raise SettingsError("--otlp-endpoint or --traces-file: where should the spans go?")
        if not 0.0 <= settings.trace_sample_ratio <= 1.0:
            raise SettingsError("--trace-sample-ratio: must be between 0 and 1")
        return settings


def destination_words(endpoint: str | None, protocol: str,
                      file: Path | None) -> dict[str, str]:
    """Each span destination ("otlp", "file") in words: the endpoint and protocol, the path."""
    words = {OTLP: f"{endpoint} ({protocol})"} if endpoint else {}
    if file is not None:
        words[FILE] = str(file)
    return words


def check_otlp_endpoint(value: str | None) -> None:
    """Refuse an OTLP endpoint that is neither http(s)://host[:port][/path] nor host:port."""
    if value is None:
        return
    expected = f"--otlp-endpoint: expected http://host:port or https://host:port, got {value!r}"
    try:
        parsed = urlsplit(value if "://" in value else f"//{value}")
        port = parsed.port
    except ValueError:
        raise SettingsError(expected) from None
    if parsed.scheme not in ("", "http", "https") or not parsed.hostname or (
            not parsed.scheme and port is None):
        raise SettingsError(expected)


def parse_headers(values: tuple[str, ...] | list[str]) -> tuple[tuple[str, str], ...]:
    """`K=V` headers (values percent-decoded, as OTEL_EXPORTER_OTLP_HEADERS writes them)."""
    headers = []
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"--otlp-header: expected KEY=VALUE, got {value!r}")
        headers.append((key.strip().lower(), unquote(text.strip())))
    return tuple(headers)


@dataclass(frozen=True)
class DemoPrometheusSettings:
    """The demo's own Prometheus (`demo --prometheus`)."""

    prometheus: bool = setting(False, "Also run Prometheus (when installed: "
                                      "scripts/ensure-prometheus) scraping the exporter, with "
                                      "the shipped recording and alerting rules.")
    prometheus_listen: str = setting("127.0.0.1:9090", "host:port of that Prometheus.")

    def __post_init__(self) -> None:
        parse_listen(self.prometheus_listen, "--prometheus-listen")
        if self.prometheus and shutil.which("prometheus") is None:
            raise SettingsError("--prometheus: prometheus is not installed "
                                "(scripts/ensure-prometheus installs Debian's package)")


# What the demo changes: it polls a small simulated plane often, so its metrics move while you
# watch, serves on loopback, archives by default and runs its never-ending scenario in real time
# (x1: no server timestamp is ahead of the wall clock; --speed for faster).
DEMO_DEFAULTS: Mapping[str, Any] = MappingProxyType({
    "listen": "127.0.0.1:9419", "archive": Path("demo-archive"), "speed": 1.0,
    "traces_file": Path("demo-traces.jsonl"),
    "session_interval": 2.0, "count_interval": 2.0, "health_interval": 2.0,
    "facts_interval": 1.0, "archive_flush_interval": 2.0,
    "ttl": "10m",  # its simulated plane forgets ended tasks soon, so a long demo stays small
})


def parse_rpc_timeouts(values: tuple[str, ...] | list[str]) -> Mapping[str, float]:
    """`SECONDS` for every call or `RPC=SECONDS` for one, over the defaults."""
    timeouts = dict(RPC_TIMEOUTS)
    for value in values:
        name, sep, seconds = value.rpartition("=")
        if sep and name not in RPC_NAMES:
            raise SettingsError(f"--rpc-timeout: unknown RPC {name!r} (the exporter calls "
                                f"{', '.join(RPC_NAMES)})")
        try:
            number = float(seconds)
        except ValueError:
            number = -1.0
        if not number > 0 or not math.isfinite(number):
            raise SettingsError(f"--rpc-timeout: expected SECONDS or RPC=SECONDS with a "
                                f"positive number, got {value!r}")
        if sep:
            timeouts[name] = number
        else:  # one deadline for every call
            timeouts = dict.fromkeys(timeouts, number)
    return MappingProxyType(timeouts)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str, option: str) -> timedelta:
    """Parse `30d`, `12h`, `90m`, `45s` or `2w`."""
    number, unit = value[:-1], value[-1:]
    if unit in _UNITS and number.replace(".", "", 1).isdigit() and float(number) > 0:
        with contextlib.suppress(OverflowError):  # more days than a timedelta holds
            return timedelta(seconds=float(number) * _UNITS[unit])
    raise SettingsError(f"{option}: expected a positive duration like 30d or 12h, got "
                        f"{value!r}")


def parse_seconds_or_duration(value: str, option: str) -> timedelta:
    """Parse positive seconds (`600`, `0.5`) or a duration (`60s`, `10m`, `10d`)."""
    try:
        return parse_duration(value if value[-1:] in _UNITS else f"{value}s", option)
    except (SettingsError, OverflowError):
        raise SettingsError(f"{option}: expected positive seconds or a duration like 60s or "
                            f"10d, got {value!r}") from None


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML or TOML config file whose keys are option names (dashes or underscores)."""
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except OSError as error:
        raise SettingsError(f"--config: cannot read {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:  # its message ends "(at line L, column C)"
        raise SettingsError(f"--config: {path} is not valid TOML: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SettingsError(f"--config: {path}{where} is not valid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"--config: {path} must hold a mapping of option names to values")
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def parse_time(value: str, option: str, now: datetime) -> datetime:
    """An ISO 8601 time (UTC unless it names its offset), or a duration before `now`: 2h, 7d."""
    if value[-1:] in _UNITS and value[:-1].replace(".", "", 1).isdigit():
        return now - parse_duration(value, option)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise SettingsError(f"{option}: expected an ISO 8601 time like 2026-01-31T08:00:00Z or "
                            f"a duration ago like 2h or 7d, got {value!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


ANALYZE_OUTPUTS = ("table", "json", "csv")


@dataclass(frozen=True)
class AnalyzeSettings:
    """Everything `armonik-observe analyze` needs, validated: one source (an archive or a live
    control plane), the sessions, what to select and how to answer."""

    archive: Path | None = None
    endpoint: Endpoint | None = None
    tls: TlsFiles = field(default_factory=TlsFiles)
    sessions: tuple[str, ...] = ()
    baseline: str | None = None
    html: Path | None = None
    output: str = setting("table", "table (for a terminal), json or csv: json and csv are "
                                   "stable formats (docs/analytics.md).")
    since: datetime | None = field(default=None, metadata={
        "help": "Only tasks created at or after this time: ISO 8601 (UTC unless it says) or a "
                "duration ago, e.g. 2h or 7d.", "cli_type": str})
    until: datetime | None = field(default=None, metadata={
        "help": "Only tasks created before this time (same forms as --since).",
        "cli_type": str})
    partition: str | None = setting(None, "Only tasks of this partition.")
    application: str | None = setting(None, "Only tasks of this application (its name).")
    straggler_factor: float = setting(3.0, "A straggler takes longer than this many times its "
                                           "partition's median processing_to_end.")
    rpc_timeout: float = setting(60.0, "Deadline of each ListTasksDetailed page (live mode), "
                                       "seconds.")

    def __post_init__(self) -> None:
        if (self.archive is None) == (self.endpoint is None):
            raise SettingsError("give either --archive DIR or -e/--endpoint URL (one source)")
        if self.endpoint is not None and not self.sessions and self.since is None:
            raise SettingsError("the live mode needs a SESSION or --since: it never reads a "
                                "control plane's whole history")
        if self.output not in ANALYZE_OUTPUTS:
            raise SettingsError(f"--output: expected one of {', '.join(ANALYZE_OUTPUTS)}")
        if self.since and self.until and self.until <= self.since:
            raise SettingsError("--until must be after --since")
        for name in ("straggler_factor", "rpc_timeout"):
            if not getattr(self, name) > 0 or not math.isfinite(getattr(self, name)):
                raise SettingsError(f"--{name.replace('_', '-')}: must be a positive number")

    @classmethod
    def build(cls, *, endpoint: str | None = None, since: str | None = None,
              until: str | None = None, compare: str | None = None,
              sessions: tuple[str, ...] = (), certificate_authority: Path | None = None,
              client_certificate: Path | None = None, client_key: Path | None = None,
              now: datetime | None = None, **options: Any) -> AnalyzeSettings:
        """Validate raw option values into settings; `compare` names the baseline session."""
        moment = now or datetime.now(UTC)
        if compare is not None and not sessions:
            raise SettingsError("--compare BASELINE needs at least one SESSION to compare")
        parsed = tls = None
        if endpoint is not None:
            serve = ServeSettings.build(endpoint=endpoint, listen="127.0.0.1:0",
                                        certificate_authority=certificate_authority,
                                        client_certificate=client_certificate,
                                        client_key=client_key)
            parsed, tls = serve.endpoint, serve.tls
        return cls(endpoint=parsed, tls=tls or TlsFiles(), baseline=compare,
                   sessions=((compare,) if compare else ()) + tuple(sessions),
                   since=parse_time(since, "--since", moment) if since else None,
                   until=parse_time(until, "--until", moment) if until else None, **options)
