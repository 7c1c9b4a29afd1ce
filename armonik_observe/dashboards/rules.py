"""Recording and alerting rules for Prometheus, as data: rendered to dashboards/prometheus/.

Recording rules follow `level:metric:operation` and precompute, over 5 minutes, the rates and
quantiles the dashboards draw over `$__rate_interval` (the same expressions, from queries.py).
Every alert has a summary, a description and a runbook_url pointing at its section of
docs/runbook.md; `promtool test rules` unit tests live beside the rules file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from armonik_observe.dashboards import queries
from armonik_observe.dashboards.promql import DEFAULT_JOB, RULES
from armonik_observe.dashboards.queries import DURATIONS, QUANTILES, WAITING

RUNBOOK_URL = "https://github.com/aneoconsulting/armonik-observe/blob/main/docs/runbook.md"
RULES_FILE = "armonik-observe.rules.yml"
WINDOW = "5m"
# The failure ratio that pages, and the ended tasks it needs in the window to mean something.
FAILURE_RATIO = 0.1
FAILURE_MIN_TASKS = 20
# Stream lag (seconds) that warns, below --max-event-lag (120 s) which degrades the stream.
EVENT_LAG_S = 60
BY_PARTITION = "job, instance, partition"


@dataclass(frozen=True)
class Record:
    """A recording rule."""

    record: str
    expr: str
    labels: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The rule as Prometheus reads it."""
        rule: dict[str, Any] = {"record": self.record, "expr": self.expr}
        if self.labels:
            rule["labels"] = dict(self.labels)
        return rule


@dataclass(frozen=True)
class Alert:
    """An alerting rule; `runbook` is its anchor in docs/runbook.md."""

    alert: str
    expr: str
    duration: str  # how long the condition must hold; "" fires at once
    severity: str
    summary: str
    description: str
    runbook: str

    def as_dict(self, runbook_url: str = RUNBOOK_URL) -> dict[str, Any]:
        """The rule as Prometheus reads it."""
        duration = {"for": self.duration} if self.duration else {}
        return {
            "alert": self.alert, "expr": self.expr, **duration,
            "labels": {"severity": self.severity},
            "annotations": {"summary": self.summary, "description": self.description,
                            "runbook_url": f"{runbook_url}#{self.runbook}"},
        }


def recording_rules() -> Iterator[Record]:
    """The rates and quantiles of the dashboards, over 5 minutes, per job and instance."""
    yield Record("partition_status:armonik_tasks_ended:rate5m",
                 queries.throughput(RULES, WINDOW, "partition", "status"))
    yield Record("partition:armonik_tasks_failed:ratio_rate5m",
                 queries.failure_ratio(RULES, WINDOW, "partition"))
    yield Record("partition:armonik_tasks_waiting:sum",
                 queries.tasks(RULES, WAITING, "partition"))
    yield Record("partition:armonik_partition_busy_seconds:rate5m",
                 queries.busy_workers(RULES, WINDOW, "partition"))
    for histogram in DURATIONS:
        for q in QUANTILES:
            yield Record(f"partition:{histogram.metric}:histogram_quantile_rate5m",
                         queries.quantile(RULES, histogram, q, WINDOW, "partition"),
                         {"quantile": f"{q:g}"})
    yield Record("instance:armonik_observe_events_received:rate5m",
                 RULES.sum(RULES.rate("armonik_observe_events_received_total", WINDOW)))


def _health_alerts() -> Iterator[Alert]:
    up = f'up{{job="{DEFAULT_JOB}"}}'
    yield Alert(
        "ArmonikExporterDown", f"{up} == 0 or absent({up})", "2m", "critical",
        "The ArmoniK metrics exporter is not scraped",
        f"Prometheus has no successful scrape of the exporter {{{{ $labels.instance }}}} "
        f"(job {DEFAULT_JOB}), or no such target: task metrics are stale and KEDA cannot "
        "scale the partitions.",
        "exporter-down")
    yield Alert(
        "ArmonikControlPlaneUnreachable", "armonik_up == 0", "2m", "critical",
        "The exporter cannot reach the ArmoniK control plane",
        "{{ $labels.instance }} has failed its last polls of the control plane for 2 minutes.",
        "control-plane-unreachable")
    yield Alert(
        "ArmonikServiceNotHealthy", 'armonik_service_health{state!="HEALTHY"} == 1', "5m",
        "warning", "ArmoniK service {{ $labels.service }} is {{ $labels.state }}",
        "CheckHealth has reported the {{ $labels.service }} service of the control plane "
        "watched by {{ $labels.instance }} as {{ $labels.state }} for 5 minutes.",
        "service-not-healthy")


def _task_alerts() -> Iterator[Alert]:
    waiting = queries.tasks(RULES, WAITING, "partition")
    growth = RULES.sum(f'delta(armonik_tasks{{{queries.one_of("status", WAITING)}}}[10m])',
                       "partition")
    ended = RULES.sum(RULES.increase(queries.ENDED, "10m"), "partition")
    yield Alert(
        "ArmonikQueueStalled",
        f"({waiting} > 0)\nand on ({BY_PARTITION}) ({growth} > 0)\n"
        f"unless on ({BY_PARTITION}) ({ended} > 0)",
        "5m", "critical", "Partition {{ $labels.partition }} queues tasks but none ends",
        "The backlog of partition {{ $labels.partition }} has grown to {{ $value }} tasks "
        "over 10 minutes and none of its tasks has ended meanwhile.",
        "queue-stalled")
    ended_5m = RULES.sum(RULES.increase(queries.ENDED, WINDOW), "partition")
    yield Alert(
        "ArmonikHighTaskFailureRatio",
        f"partition:armonik_tasks_failed:ratio_rate5m > {FAILURE_RATIO:g}\n"
        f"and on ({BY_PARTITION}) ({ended_5m} >= {FAILURE_MIN_TASKS})",
        "10m", "warning",
        "{{ $value | humanizePercentage }} of the attempts fail in partition "
        "{{ $labels.partition }}",
        "Over 5 minutes, more than {{ humanizePercentage " f"{FAILURE_RATIO:g}" " }} of the "
        "task attempts that ended in partition {{ $labels.partition }} failed (ERROR, TIMEOUT "
        "or RETRIED).",
        "high-task-failure-ratio")
    yield Alert(
        "ArmonikTasksStuck", RULES.sum("armonik_tasks_stuck", "partition", "status") + " > 0",
        "15m", "warning",
        "{{ $value }} tasks stuck in {{ $labels.status }} in partition {{ $labels.partition }}",
        "Tasks of partition {{ $labels.partition }} have stayed in {{ $labels.status }} longer "
        "than the exporter's --stuck-threshold (held by a worker: than their max_duration).",
        "tasks-stuck")


def _session_alerts() -> Iterator[Alert]:
    deadline = "armonik_session_deadline_timestamp_seconds"
    late = (f"(armonik_session_completion_eta_seconds + time() - {deadline} > 0\n"
            f" or time() - {deadline} > 0)")
    remaining = queries.session_remaining(RULES)
    yield Alert(
        "ArmonikSessionMissesDeadline",
        f"{late}\nand on (job, instance, session) ({remaining} > 0)", "5m", "warning",
        "Session {{ $labels.session }} will miss its deadline",
        "At its current completion rate, session {{ $labels.session }} ends "
        "{{ $value | humanizeDuration }} after its deadline (or the deadline has passed "
        "with tasks left).",
        "session-misses-deadline")


def _exporter_alerts() -> Iterator[Alert]:
    yield Alert(
        "ArmonikExporterEventLag",
        f"max by (job, instance) (armonik_observe_event_lag_seconds) > {EVENT_LAG_S}", "5m",
        "warning", "The exporter's event streams lag {{ $value | humanizeDuration }}",
        "Task ends reported by ListTasks reach {{ $labels.instance }} over the event streams "
        f"more than {EVENT_LAG_S} s late: transition rates and stuck tasks are behind.",
        "exporter-event-lag")
    yield Alert(
        "ArmonikExporterStreamsDegraded",
        'sum by (job, instance) (armonik_observe_event_streams{state="degraded"}) > 0', "10m",
        "warning", "{{ $value }} event streams of the exporter are degraded",
        "{{ $labels.instance }} closed event streams that fell more than --max-event-lag "
        "behind; their sessions are served by counts and task facts only.",
        "exporter-streams-degraded")
    yield Alert(
        "ArmonikExporterDroppingRecords",
        'sum by (job, instance) (increase(armonik_observe_dropped_total{reason="capacity"}'
        '[10m])) > 0', "", "warning",
        "The exporter reached its tracked-task cap",
        "{{ $labels.instance }} dropped {{ $value | humanize }} task updates in 10 minutes because "
        "--max-tracked-tasks was reached: stuck tasks and transitions are undercounted.",
        "exporter-dropping-records")
    yield Alert(
        "ArmonikExporterCollectorErrors",
        "sum by (job, instance, collector) "
        "(increase(armonik_observe_collector_errors_total[10m])) > 0", "", "warning",
        "The exporter's {{ $labels.collector }} collector hits unexpected errors",
        "{{ $labels.instance }} logged {{ $value | humanize }} unexpected errors in its "
        "{{ $labels.collector }} collector in 10 minutes (a bug or a malformed reply).",
        "exporter-collector-errors")


def _archive_alerts() -> Iterator[Alert]:
    yield Alert(
        "ArmonikArchiveWriteErrors",
        "increase(armonik_observe_archive_write_errors_total[10m]) > 0", "", "warning",
        "The exporter's archive fails to write",
        "{{ $labels.instance }} failed {{ $value | humanize }} archive writes in 10 minutes; "
        "the rows are kept for the next flush, until the buffer is full.",
        "archive-write-errors")
    yield Alert(
        "ArmonikArchiveDroppingRows",
        "increase(armonik_observe_archive_dropped_rows_total[10m]) > 0", "", "critical",
        "The exporter's archive is losing rows",
        "{{ $labels.instance }} dropped {{ $value | humanize }} archive rows in 10 minutes: "
        "the post-mortem record has holes.",
        "archive-dropping-rows")


def _trace_alerts() -> Iterator[Alert]:
    yield Alert(
        "ArmonikTracesDroppingSpans",
        "sum by (job, instance, destination, reason) "
        "(increase(armonik_observe_spans_dropped_total{reason!=\"session_limit\"}[10m])) > 0",
        "", "warning",
        "The exporter loses spans on their way to {{ $labels.destination }}",
        "{{ $labels.instance }} dropped {{ $value | humanize }} spans for "
        "{{ $labels.destination }} in 10 minutes ({{ $labels.reason }}): traces of those "
        "sessions have holes.",
        "traces-dropping-spans")


def alerting_rules() -> Iterator[Alert]:
    """Every alert, by area."""
    yield from _health_alerts()
    yield from _task_alerts()
    yield from _session_alerts()
    yield from _exporter_alerts()
    yield from _archive_alerts()
    yield from _trace_alerts()


def rule_groups(runbook_url: str = RUNBOOK_URL) -> dict[str, Any]:
    """The rules file's content."""
    return {"groups": [
        {"name": "armonik-observe.rules", "rules": [r.as_dict() for r in recording_rules()]},
        {"name": "armonik-observe.alerts",
         "rules": [a.as_dict(runbook_url) for a in alerting_rules()]},
    ]}


def render(runbook_url: str = RUNBOOK_URL) -> str:
    """The rules file, as YAML."""
    header = ("# Generated by `python -m armonik_observe.dashboards.generate` from "
              "armonik_observe/dashboards/rules.py: edit that, not this file.\n")
    return header + yaml.dump(rule_groups(runbook_url), Dumper=_Dumper, sort_keys=False,
                              width=1000)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (long expressions) as literal blocks, one clause a line."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value,
                                   style="|" if "\n" in value else None)


_Dumper.add_representer(str, _string)
