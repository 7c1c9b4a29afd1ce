"""The HTML report: one self-contained file (Plotly's JavaScript inline, no CDN, no network)
that answers "why was this session slow?" at a glance, a section per session: summary, phase
breakdown, duration histograms per partition, throughput / backlog / concurrency, a Gantt chart
per pod with the critical path drawn over it, stragglers, retries and errors, the critical
path step by step."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from armonik_observe.analytics.analysis import SessionAnalysis
from armonik_observe.analytics.durations import STATISTICS
from armonik_observe.analytics.report import charts
from armonik_observe.analytics.report.page import Figures, cards, frame_table, page, table, text
from armonik_observe.analytics.summary import NO_FINISHED_TASK

SHOWN_ROWS = 20  # rows of the stragglers, retries and errors tables
SHOWN_STEPS = 200  # steps of the critical path drawn (its last ones)


def write_report(path: Path, sessions: Sequence[SessionAnalysis], source: str,
                 now: datetime | None = None) -> None:
    """Write the report of the sessions to `path`."""
    path.write_text(render(sessions, source, now), encoding="utf-8")


def render(sessions: Sequence[SessionAnalysis], source: str, now: datetime | None = None) -> str:
    """The report of the sessions as one HTML document."""
    figures = Figures()
    made = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    parts = [_index(sessions)] if len(sessions) > 1 else []
    parts += [_session(analysis, figures, anchor=f"s{i}") for i, analysis in enumerate(sessions)]
    title = ("ArmoniK session report" if len(sessions) == 1
             else f"ArmoniK report: {len(sessions)} sessions")
    return page(title, f"from {source}, made {made} by armonik-observe analyze",
                "".join(parts))


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:,.3f} s" if value < 100 else f"{value:,.1f} s"


def _index(sessions: Sequence[SessionAnalysis]) -> str:
    rows = []
    for i, analysis in enumerate(sessions):
        link = f'<a href="#s{i}">{text(analysis.session_id)}</a>'
        rows.append(f"<tr><td>{link}</td><td class=num>{analysis.tasks.height:,}</td>"
                    f"<td class=num>{_seconds(analysis.makespan)}</td>"
                    f"<td class=num>{_seconds(analysis.lower_bound.seconds)}</td></tr>")
    return ("<nav><h3>Sessions</h3><table><thead><tr><th>session</th><th>tasks</th>"
            "<th>makespan</th><th>lower bound</th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table></nav>")


def _session(analysis: SessionAnalysis, figures: Figures, anchor: str) -> str:
    head = f'<section class="session" id="{anchor}"><h2>Session {text(analysis.session_id)}</h2>'
    start = charts.origin(analysis)
    if not analysis.ended or start is None:
        statuses = ", ".join(f"{k} {v}" for k, v in analysis.by_status.items()) or "none"
        return (head + f'<p class="empty">This session has {analysis.tasks.height} task(s) '
                f"({text(statuses)}) and {text(NO_FINISHED_TASK)}.</p></section>")
    return head + "".join([
        _summary(analysis, start),
        "<h3>Where the time went, phase by phase</h3>",
        '<p class="note">Mean seconds per task in each phase: queue wait (submitted to '
        "received), acquisition, fetch, processing (started to processed), finalize.</p>",
        figures.div(charts.phase_breakdown(analysis)),
        _durations_table(analysis),
        "<h3>Durations per partition</h3>", figures.div(charts.histograms(analysis)),
        "<h3>Throughput, backlog and concurrency</h3>",
        f'<p class="note">On a grid from the first creation ({text(start.isoformat())}).</p>',
        figures.div(charts.curves(analysis, start)),
        _pods(analysis, figures, start),
        _stragglers(analysis),
        _retries_and_errors(analysis),
        _critical_path(analysis, figures, start),
        "</section>",
    ])


def _summary(analysis: SessionAnalysis, start: datetime) -> str:
    makespan, bound = analysis.makespan, analysis.lower_bound.seconds
    statuses = ", ".join(f"{k} {v:,}" for k, v in analysis.by_status.items())
    figures = cards([
        (f"{analysis.tasks.height:,}", f"tasks ({statuses})"),
        (_seconds(makespan), "makespan: first creation to last end"),
        (_seconds(analysis.critical_path.seconds),
         f"critical path ({len(analysis.critical_path.task_ids)} tasks)"),
        (_seconds(bound), "makespan lower bound (infinitely many workers)"),
        ("-" if analysis.parallelism is None else f"{analysis.parallelism:,.2f}",
         "parallelism: total work / makespan"),
    ])
    return (f'<p class="note">First task created {text(start.isoformat())}.</p>' + figures
            + f'<p class="verdict">{text(verdict(makespan, bound, analysis.parallelism))}</p>')


def verdict(makespan: float | None, bound: float | None, parallelism: float | None) -> str:
    """Would more workers have helped? Makespan against the lower bound, in words."""
    if not makespan or bound is None:
        return "Not enough ended tasks to tell."
    speedup = makespan / bound if bound else float("inf")
    running = "" if parallelism is None else f" Tasks ran {parallelism:,.1f} at a time on average."
    if speedup < 1.2:
        return (f"More workers would not have helped: the session took {makespan:,.1f} s and "
                f"its longest chain of dependent work alone takes {bound:,.1f} s." + running)
    return (f"With enough workers this session could have finished up to {speedup:,.1f}x "
            f"sooner: it took {makespan:,.1f} s, its longest chain of dependent work takes "
            f"{bound:,.1f} s." + running)


def _durations_table(analysis: SessionAnalysis) -> str:
    rows = [[row["measure"], *(row[s] for s in STATISTICS)]
            for row in analysis.durations.iter_rows(named=True)]
    return table(["measure (seconds)", *STATISTICS], rows)


def _pods(analysis: SessionAnalysis, figures: Figures, start: datetime) -> str:
    usage, gantt = analysis.pods, analysis.gantt
    heading = "<h3>Pods: who ran what, and when</h3>"
    if usage.is_empty():
        return heading + '<p class="note">No task of this session ran on a known pod.</p>'

    shown = f"one bar per task ({gantt.tasks:,} tasks)"
    if gantt.merged_gap_seconds is not None:
        merged = (f"gaps under {gantt.merged_gap_seconds:g} s merged"
                  if gantt.merged_gap_seconds else "overlapping tasks merged")
        shown = (f"{gantt.tasks:,} tasks drawn as {gantt.bars.height:,} busy periods "
                 f"(downsampled past {analysis.options.max_gantt_bars:,} tasks: {merged})")
    stats = usage.select(pl.len().alias("pods"), pl.col("utilization").mean().alias("mean"),
                         pl.col("utilization").min().alias("min"),
                         pl.col("utilization").max().alias("max")).row(0, named=True)
    least = usage.sort("utilization", "pod_hostname").head(10)
    return "".join([
        heading,
        f'<p class="note">{stats["pods"]:,} pods; utilization (busy time over the makespan) '
        f'mean {stats["mean"]:.1%}, min {stats["min"]:.1%}, max {stats["max"]:.1%}. Gantt: '
        f"{shown}; the critical path in red.</p>",
        figures.div(charts.gantt(analysis, start)),
        "<p class=note>The least utilized pods:</p>", frame_table(least, ("pod_hostname",)),
    ])


def _stragglers(analysis: SessionAnalysis) -> str:
    options = analysis.options
    found = analysis.stragglers
    return "".join([
        "<h3>Stragglers and skew</h3>",
        f'<p class="note">{found.height:,} task(s) took more than {options.straggler_factor:g} '
        f"x their partition's median {text(options.straggler_measure)}; skew is max / median."
        "</p>",
        frame_table(analysis.skew),
        frame_table(found.head(SHOWN_ROWS), ("task_id", "pod_hostname")) if found.height else "",
    ])


def _retries_and_errors(analysis: SessionAnalysis) -> str:
    retries, errors = analysis.retries, analysis.errors
    recovered = retries.filter(pl.col("final_status") == "COMPLETED").height
    parts = ["<h3>Retries and errors</h3>",
             f'<p class="note">{retries.height:,} task(s) retried, {recovered:,} of them '
             f"completed in the end.</p>"]
    if retries.height:
        slowest = retries.sort("retried_seconds", descending=True).head(SHOWN_ROWS)
        parts.append(frame_table(slowest, ("first_task_id", "final_task_id")))
    if errors.height:
        parts.append(frame_table(errors.head(SHOWN_ROWS), ("example_task_id",)))
    else:
        parts.append('<p class="note">No attempt ended in error, timeout or cancellation.</p>')
    return "".join(parts)


def _critical_path(analysis: SessionAnalysis, figures: Figures, start: datetime) -> str:
    chain = analysis.critical_path
    steps = charts.critical_steps(analysis).tail(SHOWN_STEPS)
    shown = ("" if len(chain.task_ids) <= SHOWN_STEPS
             else f" Its last {SHOWN_STEPS} steps are shown.")
    columns = ["step", "task_id", "via", "status", "pod_hostname", "created_at", "started_at",
               "ended_at", "processing_to_end_seconds"]
    return "".join([
        "<h3>Critical path</h3>",
        f'<p class="note">What the session\'s end waited on: {len(chain.task_ids)} task(s), '
        f"{_seconds(chain.seconds)} from the first one's creation to the last one's end; "
        f"each step starts after the one before (via a submission, a data dependency or a "
        f"retry).{shown}</p>",
        figures.div(charts.critical_path(steps, start)),
        frame_table(steps.select(columns), ("task_id",)),
    ])
