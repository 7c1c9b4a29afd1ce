"""Cluster overview: is the control plane up and healthy, how much work flows, how long it takes."""

from __future__ import annotations

from typing import Any

from armonik_observe.dashboards import queries
from armonik_observe.dashboards.grafana import (
    TASKS_PER_S,
    UP_DOWN,
    Board,
    Query,
    bars,
    buckets,
    graph,
    label_variable,
    scope_variables,
    single,
    states,
)
from armonik_observe.dashboards.promql import DASHBOARD, RATE_INTERVAL, eq
from armonik_observe.dashboards.queries import DURATIONS, IN_FLIGHT, QUANTILES, WAITING

UID = "armonik-observe-overview"
TITLE = "ArmoniK / Cluster overview"
PARTITION = ('partition=~"$partition"',)
HEALTH = states({0: ("UNSPECIFIED", "text"), 1: ("HEALTHY", "green"),
                 2: ("DEGRADED", "orange"), 3: ("UNHEALTHY", "red")})


def partition_variable() -> Any:
    """The partitions to show (All by default)."""
    return label_variable("partition", "Partition", 'label_values(armonik_tasks{job=~"$job", '
                          'instance=~"$instance"}, partition)', multi=True)


def health_code() -> str:
    """Each service's state as a number: 1 HEALTHY, 2 DEGRADED, 3 UNHEALTHY, 0 UNSPECIFIED."""
    terms = [f"{weight} * max by (service) "
             f"({DASHBOARD.sel('armonik_service_health', eq('state', state))})"
             for weight, state in ((1, "HEALTHY"), (2, "DEGRADED"), (3, "UNHEALTHY"))]
    return " + ".join(terms)


def _health(board: Board) -> None:
    board.row("Health").add(
        single("Control plane", "Whether the exporter's last polls of the control plane "
               "succeeded (armonik_up).", [Query(f"min({DASHBOARD.sel('armonik_up')})")],
               width=4, mappings=UP_DOWN, thresholds=[(None, "red"), (1, "green")]),
        single("Exporter scraped", "Whether Prometheus scrapes the exporter (up).",
               [Query(f"min({DASHBOARD.sel('up')})")], width=4, mappings=UP_DOWN,
               thresholds=[(None, "red"), (1, "green")]),
        single("Services", "Health of the control plane's services as CheckHealth reports "
               "them (armonik_service_health).", [Query(health_code(), "{{service}}")],
               width=8, mappings=HEALTH),
        single("Versions", "ArmoniK Core and API versions (ListVersions), and the exporter's.",
               [Query(f"max by (version) ({DASHBOARD.sel(name)})", f"{label} {{{{version}}}}")
                for name, label in (("armonik_core_info", "Core"), ("armonik_api_info", "API"),
                                    ("armonik_observe_build_info", "armonik-observe"))],
               width=8, names=True),
    )


def _flow(board: Board) -> None:
    window = RATE_INTERVAL
    board.row("Tasks").add(
        single("Throughput", "Tasks ending per second, every status (armonik_tasks_ended_total).",
               [Query(queries.throughput(DASHBOARD, window, matchers=PARTITION))], TASKS_PER_S),
        single("Failure ratio", "Share of the attempts ending in ERROR, TIMEOUT or RETRIED.",
               [Query(queries.failure_ratio(DASHBOARD, window, matchers=PARTITION))],
               "percentunit", thresholds=[(None, "green"), (0.05, "orange"), (0.1, "red")]),
        single("Backlog", "Tasks queued for a worker (SUBMITTED and DISPATCHED).",
               [Query(queries.tasks(DASHBOARD, WAITING, matchers=PARTITION))]),
        single("Running sessions", "Sessions in RUNNING status (armonik_sessions).",
               [Query(f"sum({DASHBOARD.sel('armonik_sessions', eq('status', 'RUNNING'))})")]),
        graph("Tasks in flight by partition and status", "Tasks not yet ended, by status "
              "(CountTasksByStatus).", [Query(queries.tasks(
                  DASHBOARD, IN_FLIGHT, "partition", "status", matchers=PARTITION),
                  "{{partition}} {{status}}")], stack=True),
        graph("Throughput by status", "Tasks ending per second, by final status.",
              [Query(queries.throughput(DASHBOARD, window, "status", matchers=PARTITION),
                     "{{status}}")], TASKS_PER_S, stack=True),
        graph("Backlog by partition", "Tasks queued for a worker (SUBMITTED and DISPATCHED), "
              "by partition.", [Query(queries.tasks(DASHBOARD, WAITING, "partition",
                                                    matchers=PARTITION), "{{partition}}")]),
        graph("Failure ratio by partition", "Share of the attempts ending in ERROR, TIMEOUT "
              "or RETRIED, by partition; 0 when none failed.",
              [Query(queries.failure_ratio(DASHBOARD, window, "partition", matchers=PARTITION),
                     "{{partition}}")], "percentunit"),
        bars("Tasks by status", "Every task the control plane holds, by status, in the "
             "selected partitions.", [Query(f"sum by (status) "
                                            f"({DASHBOARD.sel('armonik_tasks', *PARTITION)})",
                                            "{{status}}", instant=True)], width=24, height=7),
    )


def _durations(board: Board) -> None:
    board.row("Durations")
    for histogram in DURATIONS:
        board.add(graph(
            f"{histogram.title}: p50, p95, p99", f"Quantiles of {histogram.metric} over the "
            "tasks ended in the window, by partition (from the task facts).",
            [Query(queries.quantile(DASHBOARD, histogram, q, RATE_INTERVAL, "partition",
                                    matchers=PARTITION), f"p{q * 100:g} {{{{partition}}}}")
             for q in QUANTILES], "s"))
    board.row("Duration heatmaps: $partition", repeat="partition")
    for histogram in DURATIONS:
        board.add(buckets(histogram.title, f"Tasks ended per second in each bucket of "
                          f"{histogram.metric}, in partition $partition.",
                          Query(queries.bucket_rates(DASHBOARD, histogram, RATE_INTERVAL,
                                                     PARTITION), "{{le}}")))


def board() -> Board:
    """The cluster overview."""
    overview = Board(UID, TITLE, "Control plane health, task flow, failures and durations of an "
                     "ArmoniK cluster, from armonik-observe.",
                     [*scope_variables(), partition_variable()])
    _health(overview)
    _flow(overview)
    _durations(overview)
    return overview
