"""Command line: parse options, build settings, call the library. Nothing else lives here."""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import logging
import os
import sys
import typing
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
import duckdb

from armonik_observe import __version__
from armonik_observe.analytics.command import run_analyze
from armonik_observe.analytics.frames import AnalyticsError
from armonik_observe.archive import ArchiveError
from armonik_observe.archive.query import export_archive, run_sql, sql_help
from armonik_observe.collectors.channel import EndpointError
from armonik_observe.config import (
    ANALYZE_OUTPUTS,
    DEMO_DEFAULTS,
    AnalyzeSettings,
    DemoPrometheusSettings,
    ServeSettings,
    SettingsError,
    SimulatorSettings,
    TraceReplaySettings,
    destination_words,
    load_config_file,
)
from armonik_observe.dashboards.local_prometheus import PrometheusError
from armonik_observe.runner import replay_archive, run_demo, run_exporter, run_simulator
from armonik_observe.simulator.faults import FaultSpecError
from armonik_observe.simulator.scenario import ScenarioError
from armonik_observe.simulator.server import SimulatorError
from armonik_observe.traces import OTLP

_USER_ERRORS = (SettingsError, ScenarioError, FaultSpecError, SimulatorError, EndpointError,
                ArchiveError, duckdb.Error, PrometheusError)
ENV = "ARMONIK_OBSERVE"
CONFIG_PATH = "armonik_observe.config_path"  # ctx.meta: the --config file read
F = TypeVar("F", bound=Callable[..., Any])


class UserError(click.ClickException):
    """Bad input: one line on stderr and exit code 2, never a traceback."""

    exit_code = 2

    def show(self, file: object = None) -> None:
        """Print the one-line message."""
        click.echo(f"armonik-observe: error: {self.message}", err=True)


class _Cli(click.Group):
    """The command group, every error of which is one line on stderr and exit code 2."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        """Run a command; a usage or input error prints one line and exits with 2."""
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            sys.exit(130)  # Ctrl-C at a prompt
        except click.ClickException as error:
            click.echo(f"armonik-observe: error: {_one_line(error)}", err=True)
            sys.exit(2)
        if standalone_mode:
            sys.exit(result if isinstance(result, int) else 0)
        return result


def _one_line(error: click.ClickException) -> str:
    """The error in one line: where a bad value came from, how to get help with usage."""
    message = " ".join(error.format_message().split())
    if isinstance(error, click.BadParameter) and error.ctx and error.param is not None:
        source = _source(error.ctx, str(error.param.name))
        if source:
            return f"{source}: {message}"
    if isinstance(error, click.UsageError) and error.ctx is not None:
        return f"{message} (see {error.ctx.command_path} --help)"
    return message


def _source(ctx: click.Context, name: str) -> str | None:
    """Where an option's value came from when not the command line: the file or variable."""
    origin = ctx.get_parameter_source(name)
    if origin is click.core.ParameterSource.DEFAULT_MAP:
        return ctx.meta.get(CONFIG_PATH)
    if origin is click.core.ParameterSource.ENVIRONMENT:
        param = next(p for p in ctx.command.params if p.name == name)
        names = param.envvar or [f"{ctx.auto_envvar_prefix}_{name.upper()}"]
        names = [names] if isinstance(names, str) else names
        return next((n for n in names if n in os.environ), None)
    return None


@click.group(cls=_Cli, context_settings={"auto_envvar_prefix": ENV})
@click.version_option(__version__, prog_name="armonik-observe")
@click.option("--log-level", default="INFO", show_default=True, help="Logging level on stderr.",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def main(log_level: str) -> None:
    """Observe ArmoniK control planes: metrics, traces, archive and analytics."""
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _options(*options: Callable[[F], F]) -> Callable[[F], F]:
    def decorate(function: F) -> F:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def _help(settings: type, name: str) -> str:
    """The help a settings field declares."""
    return next(f.metadata["help"] for f in dataclasses.fields(settings) if f.name == name)


def _click_type(hint: Any) -> Any:
    """The click type of a setting's annotation (`float | None` is a float)."""
    kinds = [kind for kind in typing.get_args(hint) if kind is not type(None)] or [hint]
    return kinds[0]


def _settings_options(settings: type, *names: str) -> Callable[[F], F]:
    """Options for settings fields, with the default and help the settings declare."""
    hints = typing.get_type_hints(settings)
    declared = {f.name: f for f in dataclasses.fields(settings)}
    options = []
    for name in names:
        spec = declared[name]
        meta = spec.metadata
        flag = "--" + meta.get("cli_name", name).replace("_", "-")
        default = meta.get("cli_default", spec.default)
        kind = meta.get("cli_type") or _click_type(hints[name])
        if kind is bool:
            options.append(click.option(f"{flag}/--no-{flag[2:]}", default=default,
                                        show_default=True, help=meta["help"]))
            continue
        if "choices" in meta:
            kind = click.Choice(meta["choices"])
        elif meta.get("multiple") and "envvars" in meta:
            kind = _CommaList()  # OTEL_* lists are comma-separated
        envvars = [v if v.startswith("OTEL_") else f"{ENV}_{v}" for v in meta.get("envvars", ())]
        options.append(click.option(flag, type=kind, default=default, help=meta["help"],
                                    show_default=default not in (None, ()),
                                    multiple=meta.get("multiple", False),
                                    envvar=envvars or None))
    return _options(*options)


class _CommaList(click.ParamType):
    """A string option whose environment variable holds a comma-separated list."""

    name = "text"
    envvar_list_splitter = ","


def _simulator_options(*, listen: bool) -> Callable[[F], F]:
    names = ("scenario", "seed", "speed", "rate", "faults", "duration", "ttl")
    return _settings_options(SimulatorSettings, *(("listen",) if listen else ()), *names)


def _load_config(ctx: click.Context, _: click.Parameter, path: Path | None) -> Path | None:
    """Options from a YAML/TOML file become defaults: command line and env still win."""
    if path is not None:
        try:
            options = load_config_file(path)
        except SettingsError as error:
            raise UserError(str(error)) from None
        known = [str(p.name) for p in ctx.command.params if p.name and p.expose_value]
        for key in options:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {close[0].replace('_', '-')}?)" if close else ""
                raise UserError(f"{path}: unknown option {key.replace('_', '-')!r}{hint}")
        ctx.default_map = {**(ctx.default_map or {}), **options}
        ctx.meta[CONFIG_PATH] = str(path)
    return path


_file = click.Path(dir_okay=False, path_type=Path)
_config_option = click.option(
    "-c", "--config", type=_file, callback=_load_config, is_eager=True, expose_value=False,
    help="YAML or TOML file with the same keys as the options.")
_directory = click.Path(file_okay=False, path_type=Path)
_EXPORTER_SETTINGS = (
    "session_interval", "session_resync_interval", "count_interval", "health_interval",
    "facts_interval", "facts_overlap", "backfill", "clock_skew", "max_followed_sessions",
    "max_tracked_tasks", "stuck_threshold", "max_event_lag", "session_deadline_option",
    "rpc_timeouts",
    "archive_flush_interval", "archive_retention", "archive_grace", "core_compat",
    "otlp_endpoint", "otlp_protocol", "otlp_headers", "traces_file", "trace_phases",
    "trace_sample_ratio", "max_spans_per_session", "trace_session_max_age",
)
_exporter_options = _options(
    _config_option,
    click.option("--certificate-authority", type=_file, help="PEM file of the CA to trust."),
    click.option("--client-certificate", type=_file, help="PEM client certificate (mTLS)."),
    click.option("--client-key", type=_file, help="PEM client key (mTLS)."),
    click.option("--archive", type=_directory, default=None, show_default=True,
                 help="Directory of the Parquet archive of every task, event and poll."),
    _settings_options(ServeSettings, *_EXPORTER_SETTINGS),
)


# Each command reads ARMONIK_OBSERVE_<OPTION>; without this click would add the command name.
_COMMAND = {"context_settings": {"auto_envvar_prefix": ENV}}


@main.command(**_COMMAND)
@_config_option
@_simulator_options(listen=True)
def simulate(**options: Any) -> None:
    """Serve a simulated ArmoniK control plane over gRPC (scenarios: docs/scenarios.md)."""
    settings = _build(SimulatorSettings.build, **options)
    _run(run_simulator(settings, click.echo))


@main.command(**_COMMAND)
@click.option("-e", "--endpoint", envvar=["AK_ENDPOINT", f"{ENV}_ENDPOINT"], required=True,
              help="Control plane, http://host:port or https://host:port (env AK_ENDPOINT).")
@_settings_options(ServeSettings, "listen")
@click.option("--duration", type=float, default=None,
              help="Stop after this many seconds (default: until Ctrl-C).")
@_exporter_options
def serve(duration: float | None, **options: Any) -> None:
    """Watch an ArmoniK control plane: Prometheus metrics on /metrics, a status page on /,
    health on /health; with --archive its Parquet archive, with --otlp-endpoint or
    --traces-file a span per task."""
    settings = _build(ServeSettings.build, **options)
    _run(run_exporter(settings, click.echo, duration))


@main.command(context_settings={"auto_envvar_prefix": ENV, "default_map": dict(DEMO_DEFAULTS)})
@_settings_options(ServeSettings, "listen")
@_simulator_options(listen=False)
@_settings_options(DemoPrometheusSettings, "prometheus", "prometheus_listen")
@_exporter_options
def demo(listen: str, prometheus: bool, prometheus_listen: str, **options: Any) -> None:
    """Run the demo: a simulated control plane running a never-ending workload in real time,
    and the exporter watching it (metrics, status page, archive and spans), in one process."""
    simulator_keys = ("scenario", "seed", "speed", "rate", "faults", "duration", "ttl")
    simulator_options = {key: options.pop(key) for key in simulator_keys}
    simulator = _build(SimulatorSettings.build, listen="127.0.0.1:0", **simulator_options)
    # Validate the exporter options now, so bad input fails before anything starts.
    _build(ServeSettings.build, endpoint="http://127.0.0.1:1", listen=listen, **options)
    own_prometheus = _build(DemoPrometheusSettings, prometheus=prometheus,
                            prometheus_listen=prometheus_listen)

    def serve_settings(endpoint: str) -> ServeSettings:
        return ServeSettings.build(endpoint=endpoint, listen=listen, **options)

    _run(run_demo(simulator, serve_settings, click.echo, own_prometheus))


@main.command(help=sql_help(), short_help="Run SQL over an archive's views.", **_COMMAND)
@click.option("--archive", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Archive directory.")
@click.option("-o", "--output", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True, help="table for people; json (an array of objects) and csv "
              "(maps and lists as JSON text) for programs.")
@click.argument("query")
def sql(archive: Path, output: str, query: str) -> None:
    try:
        click.echo(run_sql(archive, query, output), nl=False)
    except _USER_ERRORS as error:
        raise UserError(str(error).splitlines()[0]) from None


@main.command(**_COMMAND)
@click.option("--archive", type=_directory, default=None, help="Archive directory to analyse.")
@click.option("-e", "--endpoint", default=None, help="Live control plane, http://host:port or "
              "https://host:port, paged with ListTasksDetailed (instead of --archive).")
@click.option("--certificate-authority", type=_file, help="PEM file of the CA to trust.")
@click.option("--client-certificate", type=_file, help="PEM client certificate (mTLS).")
@click.option("--client-key", type=_file, help="PEM client key (mTLS).")
@click.option("--compare", metavar="BASELINE", default=None,
              help="Compare each SESSION with this baseline session.")
@click.option("--html", type=_file, default=None,
              help="Also write a self-contained HTML report (opens offline).")
@click.option("-o", "--output", type=click.Choice(ANALYZE_OUTPUTS), default="table",
              show_default=True, help=_help(AnalyzeSettings, "output"))
@_settings_options(AnalyzeSettings, "since", "until", "partition", "application",
                   "straggler_factor", "rpc_timeout")
@click.argument("sessions", nargs=-1)
def analyze(**options: Any) -> None:
    """Analyse sessions after the fact: durations, phases, pods, stragglers, the task graph.

    SESSION...: the sessions (default: every session in the archive).
    """
    _prefer_command_line(click.get_current_context(), options, "archive", "endpoint")
    settings = _build(AnalyzeSettings.build, **options)
    try:
        output = run_analyze(settings, lambda line: click.echo(line, err=True))
    except (*_USER_ERRORS, AnalyticsError, OSError) as error:
        raise UserError(_message(error).splitlines()[0]) from None
    click.echo(output, nl=False)


def _prefer_command_line(ctx: click.Context, options: dict[str, Any], *names: str) -> None:
    """Of exclusive options, drop those set by the environment or a config file when the
    command line sets another (ARMONIK_OBSERVE_ENDPOINT set for `serve` must not stop
    `analyze --archive`)."""
    given = [name for name in names if options.get(name) is not None]
    typed = [name for name in given
             if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE]
    if typed:
        for name in set(given) - set(typed):
            options[name] = None


@main.command(**_COMMAND)
@click.option("--archive", type=_directory, required=True, help="Archive directory.")
@click.argument("sessions", nargs=-1)
@_settings_options(ServeSettings, "otlp_endpoint", "otlp_protocol", "otlp_headers",
                   "traces_file", "trace_phases", "trace_sample_ratio")
def traces(archive: Path, sessions: tuple[str, ...], **options: Any) -> None:
    """Send the spans of archived sessions (every one without SESSION) to OTLP or a file."""
    settings = _build(TraceReplaySettings.build, **options)
    # The OTLP exporters log each retry; what failed is told once, below.
    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
    try:
        counts = replay_archive(archive, sessions, settings,
                                progress=_progress if sys.stderr.isatty() else iter)
    except _USER_ERRORS as error:
        raise UserError(str(error).splitlines()[0]) from None
    words = destination_words(settings.otlp_endpoint, settings.otlp_protocol,
                              settings.traces_file)
    failed = [f"{c.failed} spans could not be sent to {words[name]} ({c.exported} were)"
              for name, c in counts.items() if c.failed]
    sent = [f"{c.exported} to {words[name]}" for name, c in counts.items() if not c.failed]
    if failed:
        hint = ": is the OTLP endpoint up?" if OTLP in counts and counts[OTLP].failed else ""
        also = f" (sent {' and '.join(sent)})" if sent else ""
        raise UserError("; ".join(failed) + hint + also)
    unsampled = next(iter(counts.values())).unsampled
    left_out = f" ({unsampled} left out by the sampler)" if unsampled else ""
    click.echo(f"sent the spans of {archive}: {' and '.join(sent)}{left_out}")


def _progress(sessions: list[str]) -> Iterator[str]:
    """The sessions, with a progress bar on stderr."""
    with click.progressbar(sessions, label="sessions", file=sys.stderr, show_pos=True) as bar:
        yield from bar


@main.group(name="archive")
def archive_group() -> None:
    """Work on an archive directory."""


@archive_group.command(name="export", **_COMMAND)
@click.option("--archive", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Archive directory.")
@click.option("--to", "target", type=click.Path(path_type=Path), required=True,
              help="A .duckdb file, or a directory with --format parquet.")
@click.option("--format", "kind", type=click.Choice(["duckdb", "parquet"]), default="duckdb",
              show_default=True, help="duckdb: one database file with a table per view; "
              "parquet: one deduplicated <table>.parquet per view.")
@click.option("--overwrite", is_flag=True, help="Replace an existing target.")
def export(archive: Path, target: Path, kind: str, overwrite: bool) -> None:
    """Export the archive to one DuckDB file or to a clean Parquet dataset."""
    try:
        written = export_archive(archive, target, kind, overwrite)
    except _USER_ERRORS as error:
        raise UserError(str(error).splitlines()[0]) from None
    click.echo(f"exported {archive} to {written}")


T = TypeVar("T")


def _build(builder: Callable[..., T], **options: Any) -> T:
    try:
        return builder(**options)
    except _USER_ERRORS as error:
        message = str(error)
        # "--count-interval: must be positive": say where the value came from.
        name = message.split(":", 1)[0].removeprefix("--").replace("-", "_")
        context = click.get_current_context(silent=True)
        if context is not None and any(p.name == name for p in context.command.params):
            source = _source(context, name)
            message = f"{source}: {message}" if source else message
        raise UserError(message) from None


def _message(error: Exception) -> str:
    """An error in one line: an OSError's words and the file they are about, if any."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    return str(error)


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    try:
        asyncio.run(coroutine)
    except TimeoutError:  # an OSError too, but nothing the user typed: the stop overran
        click.echo("armonik-observe: error: the stop did not finish in time", err=True)
        sys.exit(1)
    except (*_USER_ERRORS, OSError) as error:
        raise UserError(_message(error)) from None
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
