"""Partitions and autoscaling: queued work and busy workers against each partition's pods, and
the metric KEDA scales on.

Busy workers are `rate(armonik_partition_busy_seconds_total[w])`: worker time lands when a task
ends, so over a window much longer than the tasks the rate is the mean number of busy workers;
tasks longer than the window land as steps (the `busy_window` variable sets w).
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.models import dashboard as models

from armonik_observe.dashboards import queries
from armonik_observe.dashboards.grafana import (
    Board,
    Query,
    bars,
    graph,
    label_variable,
    scope_variables,
)
from armonik_observe.dashboards.promql import DASHBOARD
from armonik_observe.dashboards.queries import QUEUED

UID = "armonik-observe-partitions"
TITLE = "ArmoniK / Partitions and autoscaling"
PARTITION = ('partition=~"$partition"',)
BUSY_WINDOWS = ("1m", "5m", "15m", "1h", "6h")
BUSY_WINDOW = "5m"  # the default: much longer than most tasks
# The official exporter's per-partition names, as KEDA's ScaledObjects query them.
KEDA_METRIC = '__name__=~"armonik_.+_tasks_queued"'


def partition_variable() -> Any:
    """The partitions to show (All by default); the partition panels repeat over it."""
    return label_variable("partition", "Partition", 'label_values(armonik_partition_pod_max{'
                          'job=~"$job", instance=~"$instance"}, partition)', multi=True)


def busy_window_variable() -> Any:
    """The window of the busy-workers rate: much longer than the tasks."""
    default = models.VariableOption(selected=True, text=BUSY_WINDOW, value=BUSY_WINDOW)
    return (dashboard.CustomVariable("busy_window").label("Busy window")
            .values(",".join(BUSY_WINDOWS)).current(default))


def _per_partition(name: str) -> str:
    return f"max({DASHBOARD.sel(name, *PARTITION)})"


def _workers(board: Board) -> None:
    pod_max = Query(_per_partition("armonik_partition_pod_max"), "pod max")
    # One repeated panel a row: its copies fill the row, two a line.
    board.row("Busy workers").add(
        graph("Busy workers against pod max: $partition", "Mean number of busy workers over "
              "$busy_window (worker time of ended tasks per second), against the partition's "
              "pods. Tasks longer than the window land as steps when they end.",
              [Query(queries.busy_workers(DASHBOARD, "$busy_window", matchers=PARTITION),
                     "busy workers"), pod_max,
               Query(_per_partition("armonik_partition_pod_reserved"), "pods reserved"),
               Query(queries.tasks(DASHBOARD, ("PROCESSING",), matchers=PARTITION),
                     "processing now")], repeat="partition"))
    board.row("Queued work").add(
        graph("Queued against pod max: $partition", "Tasks queued or processing (what the "
              "official exporter calls queued, and KEDA scales on) against the partition's "
              "pods.", [Query(queries.tasks(DASHBOARD, QUEUED, matchers=PARTITION), "queued"),
                        pod_max], repeat="partition"))


def _autoscaling(board: Board) -> None:
    busy = queries.busy_workers(DASHBOARD, "$busy_window", "partition", matchers=PARTITION)
    pods = f"max by (partition) ({DASHBOARD.sel('armonik_partition_pod_max', *PARTITION)})"
    board.row("Autoscaling").add(
        graph("KEDA's queued metric", "armonik_<partition>_tasks_queued as KEDA reads it "
              "(job metrics-exporter; dashes in partition names become underscores).",
              [Query(DASHBOARD.sel("", KEDA_METRIC), "{{__name__}}")]),
        graph("Worker utilisation", "Busy workers over pod max, by partition.",
              [Query(f"{busy} / {pods}", "{{partition}}")], "percentunit"),
        graph("Stuck tasks", "Tasks in one status longer than --stuck-threshold (dispatched "
              "or processing: than their max_duration), by partition and status.",
              [Query(queries.gauge_sum(DASHBOARD, "armonik_tasks_stuck", "partition", "status",
                                               matchers=PARTITION),
                     "{{partition}} {{status}}")]),
        bars("Pods by partition", "Maximum and reserved pods, and the priority, of each "
             "partition (ListPartitions).",
             [Query(f"max by (partition) ({DASHBOARD.sel(name, *PARTITION)})",
                    f"{{{{partition}}}} {label}", instant=True)
              for name, label in (("armonik_partition_pod_max", "pod max"),
                                  ("armonik_partition_pod_reserved", "reserved"),
                                  ("armonik_partition_priority", "priority"))]),
    )


def board() -> Board:
    """The partitions and autoscaling dashboard."""
    partitions = Board(UID, TITLE, "Queued work, busy workers and KEDA's metric for each ArmoniK "
                       "partition, from armonik-observe.",
                       [*scope_variables(), partition_variable(), busy_window_variable()])
    _workers(partitions)
    _autoscaling(partitions)
    return partitions
