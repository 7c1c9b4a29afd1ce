"""What the status page shows: a snapshot of the exporter, read at one instant on its loop.

Everything here is plain data (times in epoch seconds on the exporter's clock), so the page is
rendered from it alone and a test can build one by hand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from armonik_observe.archive.output import ArchiveOutput
from armonik_observe.config import destination_words
from armonik_observe.model import TERMINAL_TASK_STATUSES
from armonik_observe.pipeline import Sink
from armonik_observe.traces.sink import TraceSink

if TYPE_CHECKING:
    from armonik_observe.service import Exporter

MICROS = 1_000_000
MAX_SESSIONS = 50  # rows of followed sessions shown, newest first
_TERMINAL = frozenset(status.name for status in TERMINAL_TASK_STATUSES)


@dataclass(frozen=True)
class Readiness:
    """Whether the exporter can serve meaningful metrics, and if not, why."""

    ready: bool
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceHealth:
    """One control-plane service as CheckHealth last reported it."""

    service: str
    status: str
    message: str
    observed_at: float


@dataclass(frozen=True)
class PartitionRow:
    """Tasks by status in one partition, and how fast its tasks end."""

    partition_id: str
    counts: Mapping[str, int]
    pod_max: int | None
    ended_per_second: float  # over the last minute
    ended_total: int  # since the exporter started counting
    stuck: int


@dataclass(frozen=True)
class SessionRow:
    """One followed session and its progress."""

    session_id: str
    status: str
    partition: str
    application: str
    created_at: float | None
    ended: int  # tasks in a final status
    total: int
    eta_seconds: float | None  # None when the completion rate is unknown
    deadline: float | None


@dataclass(frozen=True)
class PollerRow:
    """One collector polling the control plane."""

    name: str
    ok: bool | None  # None before its first poll
    seconds_since_success: float | None
    last_failure: str
    errors: int  # unexpected exceptions


@dataclass(frozen=True)
class ArchiveState:
    """The Parquet archive: its size on disk and its writer."""

    directory: str
    rows: int  # in readable segments, as last measured
    bytes: int
    rows_written: int  # by this run
    last_write_at: float | None
    write_errors: int
    dropped_rows: int


@dataclass(frozen=True)
class SpanDestinationState:
    """What one span destination took and lost."""

    words: str
    exported: int
    queue_full: int
    export_failed: int


@dataclass(frozen=True)
class TracesState:
    """Spans sent to OTLP and/or a file, and those over the session limit."""

    destinations: tuple[SpanDestinationState, ...]
    session_limit: int


@dataclass(frozen=True)
class StatusSnapshot:
    """Everything the status page shows."""

    at: float
    endpoint: str
    up: bool
    readiness: Readiness
    versions: tuple[str, str] | None = None  # (core, api)
    health: tuple[ServiceHealth, ...] = ()
    partitions: tuple[PartitionRow, ...] = ()
    sessions: tuple[SessionRow, ...] = ()
    followed: int = 0
    unfollowed: int = 0
    session_totals: Mapping[str, int] = field(default_factory=dict)
    streams: Mapping[str, int] = field(default_factory=dict)
    events_received: int = 0
    last_event_at: float | None = None
    reconnects: int = 0
    tasks_tracked: int = 0
    pollers: tuple[PollerRow, ...] = ()
    facts_watermark: float | None = None
    archive: ArchiveState | None = None
    traces: TracesState | None = None


def snapshot(exporter: Exporter, now: float, monotonic_now: float) -> StatusSnapshot:
    """Read the exporter's state for the page (on its loop: nothing here waits)."""
    state = exporter.sink.state
    versions = state.versions
    status = exporter.self_status()
    return StatusSnapshot(
        at=now,
        endpoint=exporter.settings.endpoint.url,
        up=exporter.up(),
        readiness=exporter.readiness(),
        versions=(versions.core, versions.api) if versions else None,
        health=tuple(ServiceHealth(h.service, h.status, h.message, h.observed_at / MICROS)
                     for _, h in sorted(state.health.items())),
        partitions=_partitions(exporter, now, status.stuck),
        sessions=_sessions(exporter),
        followed=status.followed,
        unfollowed=status.unfollowed,
        session_totals=dict(state.session_totals),
        streams={name: n for name, n in status.stream_states.items() if n},
        events_received=sum(status.events_received.values()),
        last_event_at=status.last_event_at,
        reconnects=status.reconnects,
        tasks_tracked=status.tasks_tracked,
        pollers=tuple(
            PollerRow(p.name, p.ok, None if p.last_success is None
                      else monotonic_now - p.last_success, p.last_failure, p.mishaps.count)
            for p in exporter.pollers),
        facts_watermark=None if exporter.facts.watermark_us is None
        else exporter.facts.watermark_us / MICROS,
        archive=_archive(exporter.output("archive"), now - monotonic_now),
        traces=_traces(exporter.output("traces"), exporter),
    )


def _partitions(exporter: Exporter, now: float,
                stuck: Mapping[tuple[str, str], int]) -> tuple[PartitionRow, ...]:
    state, sink = exporter.sink.state, exporter.sink
    rates = sink.recent_ends.per_second(now, settle_s=2 * exporter.settings.facts_interval)
    ended: dict[str, int] = {}
    for (partition, _, _), count in sink.facts.ended.items():
        ended[partition] = ended.get(partition, 0) + count
    names = sorted(set(state.partitions) | set(state.partition_counts) | set(rates))
    return tuple(
        PartitionRow(
            partition_id=name,
            counts=dict(state.partition_counts.get(name, {})),
            pod_max=state.partitions[name].pod_max if name in state.partitions else None,
            ended_per_second=rates.get(name, 0.0),
            ended_total=ended.get(name, 0),
            stuck=sum(n for (partition, _), n in stuck.items() if partition == name),
        )
        for name in names if name)


def _sessions(exporter: Exporter) -> tuple[SessionRow, ...]:
    state = exporter.sink.state
    followed = sorted(exporter.discovery.followed.values(),
                      key=lambda s: s.created_at or 0, reverse=True)
    rows = []
    for session in followed[:MAX_SESSIONS]:
        counts = state.session_counts.get(session.session_id, {})
        progress = state.progress.get(session.session_id)
        eta = progress.eta_seconds() if progress is not None else math.nan
        rows.append(SessionRow(
            session_id=session.session_id,
            status=session.status,
            partition=session.default_partition,
            application=session.application_name,
            created_at=None if session.created_at is None else session.created_at / MICROS,
            ended=sum(n for status, n in counts.items() if status in _TERMINAL),
            total=sum(counts.values()),
            eta_seconds=None if math.isnan(eta) else eta,
            deadline=state.deadlines.get(session.session_id),
        ))
    return tuple(rows)


def _values(sink: Sink) -> dict[str, dict[tuple[str, ...], float]]:
    """A sink's self-metrics, by family and label values: what /metrics shows of it."""
    return {family.name: {tuple(labels): value for labels, value in family.rows}
            for family in sink.self_metrics()}


def _archive(output: Sink | None, clock_offset: float) -> ArchiveState | None:
    """The archive's state; `clock_offset` turns monotonic times into the exporter's clock."""
    if not isinstance(output, ArchiveOutput):
        return None
    values, writer = _values(output), output.writer
    written = writer.stats.last_write_monotonic
    return ArchiveState(
        directory=str(writer.directory),
        rows=int(sum(values["armonik_observe_archive_rows"].values())),
        bytes=int(sum(values["armonik_observe_archive_bytes"].values())),
        rows_written=int(values["armonik_observe_archive_rows_written"][()]),
        last_write_at=None if written is None else written + clock_offset,
        write_errors=int(values["armonik_observe_archive_write_errors"][()]),
        dropped_rows=int(values["armonik_observe_archive_dropped_rows"][()]),
    )


def _traces(sink: Sink | None, exporter: Exporter) -> TracesState | None:
    if not isinstance(sink, TraceSink):
        return None
    settings = exporter.settings
    words = destination_words(settings.otlp_endpoint, settings.otlp_protocol,
                              settings.traces_file)
    values = _values(sink)
    exported, dropped = (values["armonik_observe_spans_exported"],
                         values["armonik_observe_spans_dropped"])
    return TracesState(
        destinations=tuple(
            SpanDestinationState(words[name], int(exported.get((name,), 0)),
                                 int(dropped.get(("queue_full", name), 0)),
                                 int(dropped.get(("export_failed", name), 0)))
            for name in words),
        session_limit=int(dropped.get(("session_limit", ""), 0)),
    )
