"""Every metric the exporter exposes, declared once: docs/metrics.md is generated from this table.

Label cardinality is bounded on purpose: partition, status, application name, service, state,
RPC name, code, kind and reason. Session ids appear only in the `armonik_session_*` families,
capped by --max-followed-sessions. Task ids and pod names never become labels.
"""

from __future__ import annotations

from dataclasses import dataclass

# Task durations run from milliseconds (empty tasks) to hours (HPC): 5 ms to 6 h.
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    600.0, 1800.0, 3600.0, 7200.0, 14400.0, 21600.0,
)
RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

FACT_LABELS = ("partition", "application", "status")


@dataclass(frozen=True)
class MetricSpec:
    """One metric family: its name, type, labels, where its values come from, and its help."""

    name: str
    kind: str  # gauge, counter, histogram, info
    labels: tuple[str, ...]
    source: str  # poll, events, facts, self, compat
    help: str


def _spec(name: str, kind: str, labels: tuple[str, ...], source: str, text: str) -> MetricSpec:
    return MetricSpec(name, kind, labels, source, text)


METRICS: tuple[MetricSpec, ...] = (
    # -- polled control-plane state ------------------------------------------------------------
    _spec("armonik_up", "gauge", (), "poll",
          "1 when the last polls of the control plane succeeded, else 0."),
    _spec("armonik_service_health", "gauge", ("service", "state"), "poll",
          "Health of each control-plane service (database, object, queue) as a state set: 1 for "
          "the current state (HEALTHY, DEGRADED, UNHEALTHY, UNSPECIFIED), 0 for the others."),
    _spec("armonik_api_info", "info", ("version",), "poll",
          "ArmoniK API version reported by ListVersions."),
    _spec("armonik_core_info", "info", ("version",), "poll",
          "ArmoniK Core version reported by ListVersions."),
    _spec("armonik_tasks", "gauge", ("partition", "status"), "poll",
          "Tasks per partition and status (CountTasksByStatus), zero-filled for all 13 statuses."),
    _spec("armonik_sessions", "gauge", ("status",), "poll",
          "Sessions per status (ListSessions)."),
    _spec("armonik_partition_pod_max", "gauge", ("partition",), "poll",
          "Maximum number of pods of the partition."),
    _spec("armonik_partition_pod_reserved", "gauge", ("partition",), "poll",
          "Pods reserved for the partition."),
    _spec("armonik_partition_priority", "gauge", ("partition",), "poll",
          "Priority of the partition."),
    _spec("armonik_session_tasks", "gauge", ("session", "status"), "poll",
          "Tasks per status of each followed session (capped by --max-followed-sessions)."),
    _spec("armonik_session_completion_eta_seconds", "gauge", ("session",), "poll",
          "Remaining tasks of a followed session divided by its recent completion rate; NaN when "
          "unknown."),
    _spec("armonik_session_deadline_timestamp_seconds", "gauge", ("session",), "poll",
          "Deadline of a followed session, from its task option named by "
          "--session-deadline-option (an RFC 3339 time), in seconds since the epoch."),
    _spec("armonik_tasks_stuck", "gauge", ("partition", "status"), "events",
          "Tasks seen in one non-terminal status for longer than --stuck-threshold or, "
          "dispatched or processing (held by a worker), longer than their max_duration; 0 for "
          "every known partition and in-flight status."),
    # -- from the event streams ----------------------------------------------------------------
    _spec("armonik_task_status_transitions", "counter", ("partition", "status"), "events",
          "Task status changes seen on the event streams, by new status."),
    # -- from authoritative task facts (ListTasks pages) ---------------------------------------
    _spec("armonik_tasks_ended", "counter", FACT_LABELS, "facts",
          "Tasks that reached a final status, counted once each from ListTasks."),
    _spec("armonik_task_creation_to_end_seconds", "histogram", FACT_LABELS, "facts",
          "Server-computed creation_to_end duration of ended tasks (ended_at - created_at)."),
    _spec("armonik_task_processing_to_end_seconds", "histogram", FACT_LABELS, "facts",
          "Server-computed processing_to_end duration of ended tasks (ended_at - started_at)."),
    _spec("armonik_task_received_to_end_seconds", "histogram", FACT_LABELS, "facts",
          "Server-computed received_to_end duration of ended tasks (ended_at - received_at)."),
    _spec("armonik_task_queue_wait_seconds", "histogram", FACT_LABELS, "facts",
          "Time an ended task waited in the queue: received_at - submitted_at (from submission "
          "to an agent taking it off the queue)."),
    _spec("armonik_partition_busy_seconds", "counter", ("partition",), "facts",
          "Worker time spent on the partition's ended tasks (processed_at - started_at, else "
          "ended_at - started_at), added once when each task ends: rate() over a window much "
          "longer than the tasks is the mean number of busy workers. Every known partition "
          "starts at 0."),
    # -- compatibility with the official metrics exporter --------------------------------------
    _spec("armonik_tasks_<status>", "gauge", (), "compat",
          "Official exporter: tasks of a status, cluster-wide; status lower-cased; queued = "
          "submitted + dispatched + processing. Dropped by --no-core-compat."),
    _spec("armonik_<partition>_tasks_<status>", "gauge", (), "compat",
          "Official exporter: tasks of a status in a partition (dashes become underscores). KEDA "
          "scales on armonik_<partition>_tasks_queued."),
    # -- the exporter itself -------------------------------------------------------------------
    _spec("armonik_observe_build_info", "info", ("version",), "self",
          "Version of armonik-observe."),
    _spec("armonik_observe_events_received", "counter", ("kind",), "self",
          "Events received on the session streams, by kind (each kind the streams ask for "
          "starts at 0)."),
    _spec("armonik_observe_event_streams", "gauge", ("state",), "self",
          "Event streams by state (connected, connecting, degraded)."),
    _spec("armonik_observe_stream_reconnects", "counter", (), "self",
          "Event stream reconnections."),
    _spec("armonik_observe_last_event_timestamp_seconds", "gauge", (), "self",
          "Exporter time of the last event received (the events carry no timestamp)."),
    _spec("armonik_observe_event_lag_seconds", "gauge", ("session",), "self",
          "Per followed session: age of the oldest task end that ListTasks reported and the "
          "event stream has not yet delivered; 0 when the stream is up to date."),
    _spec("armonik_observe_rpc_duration_seconds", "histogram", ("rpc", "code"), "self",
          "Duration of the exporter's calls to the control plane, by RPC and status code."),
    _spec("armonik_observe_tasks_tracked", "gauge", (), "self",
          "In-flight tasks the exporter keeps state for."),
    _spec("armonik_observe_followed_sessions", "gauge", (), "self",
          "Sessions followed with an event stream."),
    _spec("armonik_observe_unfollowed_sessions", "gauge", (), "self",
          "Running or paused sessions not followed because of --max-followed-sessions."),
    _spec("armonik_observe_dropped", "counter", ("reason",), "self",
          "Records dropped on purpose, by reason, each from 0: capacity (the tracked-task cap), "
          "duplicate, regression (a status going back), replay (a subscription's snapshot)."),
    _spec("armonik_observe_asyncio_tasks", "gauge", (), "self",
          "asyncio tasks alive in the exporter (one per poller and followed stream, a few "
          "more): a number that only grows is a leak."),
    _spec("armonik_observe_cache_entries", "gauge", ("cache",), "self",
          "Entries of each bounded cache (docs/architecture.md lists the bounds): render_heads, "
          "sessions_known, session_progress, recent_ends, facts_seen, lag_pending, sessions, "
          "results."),
    _spec("armonik_observe_collector_errors", "counter", ("collector",), "self",
          "Unexpected exceptions in a collector (not gRPC errors: a bug, a malformed reply); the "
          "collector logs the first of a run with its traceback and goes on after a backoff."),
    # -- traces (with an OTLP endpoint or a traces file) --------------------------------------
    _spec("armonik_observe_spans_exported", "counter", ("destination",), "self",
          "Spans each destination took: otlp (the backend accepted them), file (written)."),
    _spec("armonik_observe_spans_dropped", "counter", ("reason", "destination"), "self",
          "Spans not delivered, per destination: queue_full (its queue in the SDK), "
          "export_failed (backend down or refusing); and session_limit (over "
          "--max-spans-per-session, before any destination: no destination label)."),
    # -- the archive (with --archive) ----------------------------------------------------------
    _spec("armonik_observe_archive_rows", "gauge", ("table",), "self",
          "Rows in the archive's readable segments per table, duplicates included."),
    _spec("armonik_observe_archive_bytes", "gauge", ("table",), "self",
          "Bytes of the archive's segments per table."),
    _spec("armonik_observe_archive_rows_written", "counter", (), "self",
          "Rows the archive writer has written since start."),
    _spec("armonik_observe_archive_dropped_rows", "counter", (), "self",
          "Rows the archive writer dropped (buffer full while writes failed, or unconvertible)."),
    _spec("armonik_observe_archive_write_errors", "counter", (), "self",
          "Archive segment writes that failed (the rows are kept for the next flush)."),
)

BY_NAME = {spec.name: spec for spec in METRICS}


def spec(name: str) -> MetricSpec:
    """Look a metric up by name."""
    return BY_NAME[name]


def exposed_name(metric: MetricSpec) -> str:
    """The family name as scraped: counters end in _total."""
    if metric.kind == "counter":
        return f"{metric.name}_total"
    return metric.name


def render_markdown() -> str:
    """The metric reference, docs/metrics.md."""
    lines = [
        "# Metrics",
        "",
        "Generated from `armonik_observe/exporters/metrics_table.py` by",
        "`python -m armonik_observe.exporters.metrics_table`; a test checks they agree.",
        "",
        "Sources: *poll* (CountTasksByStatus, ListSessions, ListPartitions, CheckHealth,",
        "ListVersions), *events* (GetEvents streams), *facts* (authoritative ListTasks pages),",
        "*self* (the exporter), *compat* (names of the official ArmoniK metrics exporter).",
        "",
        "Duration histograms use buckets from 5 ms to 6 h: "
        + ", ".join(f"{b:g}" for b in DURATION_BUCKETS) + " seconds.",
        "",
        "| name | type | labels | source | description |",
        "|---|---|---|---|---|",
    ]
    for metric in METRICS:
        labels = ", ".join(f"`{label}`" for label in metric.labels) or "-"
        lines.append(
            f"| `{exposed_name(metric)}` | {metric.kind} | {labels} | {metric.source} | "
            f"{metric.help} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")
