"""Exporter self-monitoring: is armonik-observe keeping up with the control plane?"""

from __future__ import annotations

from armonik_observe.dashboards.grafana import (
    UP_DOWN,
    Board,
    Query,
    graph,
    scope_variables,
    single,
)
from armonik_observe.dashboards.promql import DASHBOARD, RATE_INTERVAL, Scope
from armonik_observe.dashboards.queries import gauge_sum

UID = "armonik-observe-exporter"
TITLE = "ArmoniK / Exporter self-monitoring"
RPC = "armonik_observe_rpc_duration_seconds"
D: Scope = DASHBOARD


def _rate(metric: str, *labels: str, matchers: tuple[str, ...] = ()) -> str:
    return D.sum(D.rate(metric, RATE_INTERVAL, *matchers), *labels)


def _increase(metric: str, *labels: str) -> str:
    return D.sum(D.increase(metric, RATE_INTERVAL), *labels)


def _state(board: Board) -> None:
    board.row("Exporter").add(
        single("Scraped", "Whether Prometheus scrapes the exporter (up).",
               [Query(f"min({D.sel('up')})")], width=4, mappings=UP_DOWN,
               thresholds=[(None, "red"), (1, "green")]),
        single("Control plane", "Whether the exporter's last polls succeeded (armonik_up).",
               [Query(f"min({D.sel('armonik_up')})")], width=4, mappings=UP_DOWN,
               thresholds=[(None, "red"), (1, "green")]),
        single("Followed sessions", "Sessions followed with an event stream.",
               [Query(gauge_sum(D, "armonik_observe_followed_sessions"))], width=4),
        single("Unfollowed sessions", "Active sessions left unfollowed by "
               "--max-followed-sessions.",
               [Query(gauge_sum(D, "armonik_observe_unfollowed_sessions"))], width=4,
               thresholds=[(None, "green"), (1, "orange")]),
        single("Tracked tasks", "In-flight tasks the exporter keeps state for (capped by "
               "--max-tracked-tasks).", [Query(gauge_sum(D, "armonik_observe_tasks_tracked"))],
               width=4),
        single("Version", "armonik-observe's version.",
               [Query(f"max by (version) ({D.sel('armonik_observe_build_info')})",
                      "{{version}}")], width=4, names=True),
    )


def _events(board: Board) -> None:
    lag = D.sel("armonik_observe_event_lag_seconds")
    board.row("Event streams").add(
        graph("Events received per second", "Events received on the session streams, by kind.",
              [Query(_rate("armonik_observe_events_received_total", "kind"), "{{kind}}")],
              "suffix: events/s", stack=True),
        graph("Event streams by state", "Followed sessions' streams: connected, connecting, "
              "or degraded (closed for lagging past --max-event-lag).",
              [Query(gauge_sum(D, "armonik_observe_event_streams", "state"), "{{state}}")],
              stack=True),
        graph("Event lag", "Age of the oldest task end that ListTasks reported and a stream "
              "has not delivered yet, over the followed sessions.",
              [Query(f"max({lag})", "max"), Query(f"avg({lag})", "mean")], "s"),
        graph("Stream reconnects and silence", "Stream reconnections in the window, and "
              "seconds since the last event.",
              [Query(_increase("armonik_observe_stream_reconnects_total"), "reconnects"),
               Query(f"time() - max({D.sel('armonik_observe_last_event_timestamp_seconds')})",
                     "seconds since the last event")]),
        graph("Dropped records per second", "Updates dropped on purpose: replays (each "
              "subscription's snapshot) and duplicates are routine; capacity is not.",
              [Query(_rate("armonik_observe_dropped_total", "reason"), "{{reason}}")],
              "suffix: /s"),
        graph("Collector errors", "Unexpected exceptions in each collector over the window "
              "(bugs, malformed replies; gRPC errors are counted as RPC errors).",
              [Query(_increase("armonik_observe_collector_errors_total", "collector"),
                     "{{collector}}")]),
    )


def _calls(board: Board) -> None:
    buckets = _rate(f"{RPC}_bucket", "rpc", "le")
    errors = _rate(f"{RPC}_count", "rpc", matchers=('code!="OK"',))
    board.row("Control-plane calls").add(
        graph("RPC latency p50 and p99 by call", "Duration of the exporter's calls to the "
              "control plane (ListTasks, CountTasksByStatus, ...).",
              [Query(f"histogram_quantile({q}, {buckets})", f"p{q * 100:g} {{{{rpc}}}}")
               for q in (0.5, 0.99)], "s"),
        graph("RPC errors by call", "Failed calls per second (any gRPC code but OK); 0 when "
              "every call succeeds.",
              [Query(f"{errors} or {_rate(f'{RPC}_count', 'rpc')} * 0", "{{rpc}}")],
              "suffix: /s"),
        graph("RPC calls per second by call", "Calls to the control plane per second.",
              [Query(_rate(f"{RPC}_count", "rpc"), "{{rpc}}")], "suffix: /s", stack=True),
    )


def _archive(board: Board) -> None:
    board.row("Archive (with --archive)").add(
        graph("Archive rows by table", "Rows in the archive's readable segments per table, "
              "measured by the archive's upkeep (at start, then every 5 minutes).",
              [Query(gauge_sum(D, "armonik_observe_archive_rows", "table"), "{{table}}")],
              width=8),
        graph("Archive bytes by table", "Bytes of the archive's segments per table, measured "
              "with the rows.",
              [Query(gauge_sum(D, "armonik_observe_archive_bytes", "table"), "{{table}}")],
              "bytes", width=8),
        graph("Archive rows written per second", "Rows the writer wrote, and write errors and "
              "dropped rows in the window.",
              [Query(_rate("armonik_observe_archive_rows_written_total"), "rows/s"),
               Query(_increase("armonik_observe_archive_write_errors_total"), "write errors"),
               Query(_increase("armonik_observe_archive_dropped_rows_total"), "dropped rows")],
              width=8),
    )


def _traces(board: Board) -> None:
    board.row("Traces (with --otlp-endpoint or --traces-file)").add(
        graph("Spans exported per second by destination", "Spans each destination took: the "
              "OTLP backend (otlp) and the traces file (file), each with its own queue.",
              [Query(_rate("armonik_observe_spans_exported_total", "destination"),
                     "{{destination}}")], "suffix: /s", width=12),
        graph("Spans dropped by reason", "Spans lost in the window: a destination's queue "
              "full or its export failed, or over --max-spans-per-session (before any "
              "destination).",
              [Query(_increase("armonik_observe_spans_dropped_total", "reason", "destination"),
                     "{{reason}} {{destination}}")], width=12),
    )


def board() -> Board:
    """The exporter's self-monitoring dashboard."""
    exporter = Board(UID, TITLE, "Health of armonik-observe itself: polls, event streams, "
                     "calls to the control plane, the archive and the traces.", scope_variables())
    _state(exporter)
    _events(exporter)
    _calls(exporter)
    _archive(exporter)
    _traces(exporter)
    return exporter
