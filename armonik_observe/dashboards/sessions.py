"""Session drill-down: how far one followed session is, when it ends, and against its deadline."""

from __future__ import annotations

from typing import Any

from armonik_observe.dashboards import queries
from armonik_observe.dashboards.grafana import (
    TASKS_PER_S,
    Board,
    Query,
    bars,
    graph,
    label_variable,
    nan_as,
    scope_variables,
    single,
)
from armonik_observe.dashboards.promql import DASHBOARD, RATE_INTERVAL
from armonik_observe.dashboards.queries import TERMINAL

UID = "armonik-observe-session"
TITLE = "ArmoniK / Session drill-down"
SESSION = ('session="$session"',)
TASKS = DASHBOARD.sel("armonik_session_tasks", *SESSION)
ETA = f"max({DASHBOARD.sel('armonik_session_completion_eta_seconds', *SESSION)})"
ENDED = DASHBOARD.sel("armonik_session_tasks", *SESSION, queries.one_of("status", TERMINAL))
DEADLINE = f"max({DASHBOARD.sel('armonik_session_deadline_timestamp_seconds', *SESSION)})"


def session_variable() -> Any:
    """The followed session to show (armonik_session_tasks lists them)."""
    return label_variable("session", "Session", 'label_values(armonik_session_tasks{job=~"$job", '
                          'instance=~"$instance"}, session)', multi=False)


def _summary(board: Board) -> None:
    board.row("Session $session").add(
        single("Progress", "Ended tasks over all tasks of the session (retried attempts count "
               "in neither).", [Query(queries.session_progress(DASHBOARD, SESSION))],
               "percentunit", thresholds=[(None, "blue"), (1, "green")]),
        single("Completion ETA", "Remaining tasks divided by the completion rate of the last "
               "5 minutes (armonik_session_completion_eta_seconds); NaN until tasks complete.",
               [Query(ETA)], "s", mappings=[nan_as("unknown")]),
        single("Deadline", "The session's deadline, from its task option `deadline` (or "
               "--session-deadline-option); no value without one.",
               [Query(f"{DEADLINE} * 1000")], "dateTimeAsIso"),
        single("Deadline slack", "Deadline minus now minus the ETA: below 0 the session ends "
               "late at its current rate.", [Query(f"{DEADLINE} - time() - {ETA}")], "s",
               mappings=[nan_as("unknown")], thresholds=[(None, "red"), (0, "green")]),
    )


def _flow(board: Board) -> None:
    board.row("Tasks").add(
        graph("Tasks by status", "The session's tasks by status (CountTasksByStatus).",
              [Query(f"sum by (status) ({TASKS})", "{{status}}")], stack=True),
        graph("Completion ETA", "The ETA over time: a steady fall means a steady rate.",
              [Query(ETA, "ETA")], "s"),
        graph("Status flow", "Tasks per second entering (above 0) or leaving (below 0) each "
              "status: the session's transition rates, from its counts.",
              [Query(f"sum by (status) (deriv({TASKS}[{RATE_INTERVAL}]))", "{{status}}")],
              TASKS_PER_S, min_value=None),
        graph("Tasks ending per second", "Tasks reaching each final status per second.",
              [Query(f"sum by (status) (deriv({ENDED}[{RATE_INTERVAL}]))", "{{status}}")],
              TASKS_PER_S),
        bars("Status counts", "The session's tasks by status, now.",
             [Query(f"sum by (status) ({TASKS})", "{{status}}", instant=True)]),
        graph("Event stream lag", "How far the session's event stream is behind the task "
              "facts (armonik_observe_event_lag_seconds).",
              [Query(f"max({DASHBOARD.sel('armonik_observe_event_lag_seconds', *SESSION)})",
                     "lag")], "s"),
    )


def board() -> Board:
    """The session drill-down."""
    drilldown = Board(UID, TITLE, "Progress, ETA, deadline and transition rates of one session "
                      "followed by armonik-observe.", [*scope_variables(), session_variable()])
    _summary(drilldown)
    _flow(drilldown)
    return drilldown
