"""`armonik-observe analyze`: read the tasks, analyse each session, answer as a table, JSON or
CSV, and write the HTML report when asked."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO

import click

from armonik_observe.analytics.analysis import Options, SessionAnalysis
from armonik_observe.analytics.compare import compare, compare_totals
from armonik_observe.analytics.frames import Selection, TaskFrames, from_archive
from armonik_observe.analytics.live import Progress, from_live
from armonik_observe.analytics.summary import (
    TOTALS,
    csv_columns,
    csv_row,
    session_table,
    table,
    to_csv,
    to_json,
)
from armonik_observe.config import AnalyzeSettings

# Opens a progress bar with a label; the bar is told (done, total) and closed by the caller.
ProgressFactory = Callable[[str], "ProgressBar"]


class ProgressBar:
    """A progress bar on a terminal's stderr; silent when stderr is not a terminal."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.label = label
        self._bar: Any = None
        self._done = 0

    def __call__(self, done: int, total: int) -> None:
        """Show `done` of `total`."""
        if not self.stream.isatty():
            return
        if self._bar is None:
            self._bar = click.progressbar(length=total, label=self.label, file=self.stream)
            self._bar.__enter__()
        self._bar.length = max(total, done)
        self._bar.update(done - self._done)
        self._done = done

    def close(self) -> None:
        """Finish the bar's line; idempotent."""
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.__exit__(None, None, None)


def read_frames(settings: AnalyzeSettings, progress: Progress | None = None) -> TaskFrames:
    """The selected tasks from the archive or the live control plane."""
    selection = Selection(settings.sessions, settings.since, settings.until, settings.partition,
                          settings.application)
    if settings.archive is not None:
        return from_archive(settings.archive, selection)
    assert settings.endpoint is not None
    return from_live(settings.endpoint, selection, tls=settings.tls,
                     rpc_timeout=settings.rpc_timeout, progress=progress)


def run_analyze(settings: AnalyzeSettings, echo: Callable[[str], None],
                progress: ProgressFactory = ProgressBar) -> str:
    """Analyse the selected sessions; return the output (and write the report, if asked)."""
    reading = progress("reading tasks")
    try:
        frames = read_frames(settings, reading)
    finally:
        reading.close()
    options = Options(straggler_factor=settings.straggler_factor)
    found = _analyse(frames, options, progress)
    if settings.html is not None:
        # Plotly is loaded only when a report is asked for.
        from armonik_observe.analytics.report import write_report

        write_report(settings.html, found, frames.source)
        echo(f"wrote the report to {settings.html}")
    if settings.baseline is not None:
        return _comparison(found[0], found[1:], settings.output)
    return format_sessions([analysis.summary() for analysis in found], settings.output)


def _analyse(frames: TaskFrames, options: Options,
             progress: ProgressFactory) -> list[SessionAnalysis]:
    """Read and analyse each session (the answers its summary needs) under a progress bar."""
    bar = progress("analysing sessions")
    found = []
    try:
        for session in frames.sessions:
            analysis = SessionAnalysis(session, frames.session(session), frames.results,
                                       options)
            analysis.summary()  # each answer is kept: the output asks again for free
            found.append(analysis)
            bar(len(found), len(frames.sessions))
    finally:
        bar.close()
    return found


def format_sessions(summaries: list[dict[str, Any]], output: str) -> str:
    """Session summaries as JSON, CSV or tables."""
    if output == "json":
        return to_json(summaries)
    if output == "csv":
        return to_csv(csv_columns(), [csv_row(summary) for summary in summaries])
    return "\n".join(session_table(summary) for summary in summaries)


COMPARISON_COLUMNS = ("baseline_session_id", "session_id", "partition_id", "measure",
                      "statistic", "baseline_tasks", "session_tasks", "baseline", "session",
                      "delta_seconds", "delta_percent", "change")


def comparison(baseline: SessionAnalysis, session: SessionAnalysis) -> dict[str, Any]:
    """One session against the baseline: session-wide figures, then per measure and
    partition (the JSON object of --compare)."""
    before, after = baseline.summary(), session.summary()
    rows = compare(baseline.lazy, session.lazy)
    return {"baseline_session_id": baseline.session_id, "session_id": session.session_id,
            "totals": compare_totals({k: before[k] for k in TOTALS},
                                     {k: after[k] for k in TOTALS}),
            "durations": rows.to_dicts()}


def _comparison(baseline: SessionAnalysis, sessions: list[SessionAnalysis], output: str) -> str:
    objects = [comparison(baseline, session) for session in sessions]
    if output == "json":
        return to_json(objects)
    rows = [[o["baseline_session_id"], o["session_id"], *(row[c] for c in COMPARISON_COLUMNS[2:])]
            for o in objects for row in o["durations"]]
    if output == "csv":
        return to_csv(COMPARISON_COLUMNS, rows)
    return "\n".join(_comparison_table(o) for o in objects)


def _comparison_table(comparison: dict[str, Any]) -> str:
    lines = [f"session {comparison['session_id']} against {comparison['baseline_session_id']}"]
    totals = [[t["figure"], _num(t["baseline"]), _num(t["session"]), _num(t["delta"]),
               _percent(t["delta_percent"]), t["change"]] for t in comparison["totals"]]
    lines.append(table(["figure", "baseline", "session", "delta", "delta %", "change"], totals))
    lines.append("")
    rows = [[r["partition_id"], r["measure"], r["statistic"], _num(r["baseline"]),
             _num(r["session"]), _num(r["delta_seconds"]), _percent(r["delta_percent"]),
             r["change"]] for r in comparison["durations"]]
    lines.append(table(["partition", "measure", "stat", "baseline s", "session s", "delta s",
                        "delta %", "change"], rows))
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str | None:
    return None if value is None else f"{value:.3f}"


def _percent(value: float | None) -> str | None:
    return None if value is None else f"{value:+.1f}%"
