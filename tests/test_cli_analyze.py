"""`armonik-observe analyze` as a user runs it: the live mode and the archive agree, the formats
parse, and bad input gives one line and exit code 2."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

from analytics_truth import SCENARIO, archive_truth
from exporter_harness import exporter_for, settle
from test_archive_truth import archive_settings, catch_up, run_to_end
from test_cli_serve import DEAD, assert_one_line_error, run_cli

from armonik_observe.analytics.command import ProgressBar
from armonik_observe.analytics.frames import COLUMNS, Selection
from armonik_observe.analytics.live import read_live
from armonik_observe.analytics.summary import csv_columns
from armonik_observe.archive import open as open_archive
from armonik_observe.archive.writer import ArchiveSink
from armonik_observe.collectors.channel import parse_endpoint
from armonik_observe.model import SessionInfo
from armonik_observe.pipeline import Batch


def analyze(*args: str) -> Any:
    return run_cli("analyze", *args)


async def test_the_live_mode_and_the_archive_give_the_same_json(
    manual_sim: Any, tmp_path: Path
) -> None:
    directory = tmp_path / "archive"
    async with (manual_sim(SCENARIO) as (sim, _),
                exporter_for(sim, **archive_settings(directory)) as exporter):
        await settle(exporter, 1)
        await run_to_end(sim, exporter)
        await catch_up(exporter)
        sessions = sorted(sim.workload.session_ids)
        archived = await asyncio.to_thread(analyze, "--archive", str(directory), "-o", "json")
        live = await asyncio.to_thread(analyze, "-e", sim.endpoint, "-o", "json", *sessions)
        frames = await read_live(parse_endpoint(sim.endpoint), Selection(tuple(sessions)))
    assert archived.returncode == 0 and live.returncode == 0, archived.stderr + live.stderr
    assert archived.stderr == live.stderr == ""  # no progress bar when not on a terminal
    from_archive, from_live = json.loads(archived.stdout), json.loads(live.stdout)
    assert [s["session_id"] for s in from_archive] == sessions
    assert sum(s["tasks"]["count"] for s in from_archive) == len(sim.true_tasks())
    assert from_live == from_archive
    # The same columns and types: every analysis runs on either.
    archive_schema = open_archive(directory).lazy("tasks").select(COLUMNS).collect_schema()
    assert frames.raw.collect_schema() == archive_schema


async def test_the_formats_parse_and_csv_has_a_row_per_session(
    manual_sim: Any, tmp_path: Path
) -> None:
    async with manual_sim(SCENARIO) as (sim, _):
        await sim.run_until_idle()
        await archive_truth(sim, tmp_path / "archive")
        sessions = sim.workload.session_ids
    as_json = json.loads(analyze("--archive", str(tmp_path / "archive"), "-o", "json").stdout)
    rows = list(csv.DictReader(io.StringIO(analyze("--archive", str(tmp_path / "archive"),
                                                   "-o", "csv").stdout)))
    assert list(rows[0]) == csv_columns() and len(rows) == len(sessions)
    for row, summary in zip(rows, as_json, strict=True):
        assert row["session_id"] == summary["session_id"]
        assert int(row["tasks"]) == summary["tasks"]["count"]
        assert float(row["makespan_seconds"]) == summary["makespan_seconds"]
        p95 = summary["durations"]["processing_to_end"]["p95"]
        assert row["processing_to_end_p95"] == ("" if p95 is None else repr(p95))
    table = analyze("--archive", str(tmp_path / "archive"), sessions[0])
    assert table.returncode == 0 and f"session {sessions[0]}" in table.stdout
    assert "processing_to_end" in table.stdout and "makespan" in table.stdout
    pricing = sorted(s["session_id"] for s in as_json
                     if "cpu" in s["by_partition"] and len(s["by_partition"]) == 1
                     and s["tasks"]["count"] >= 60)[:2]
    compared = analyze("--archive", str(tmp_path / "archive"), "--compare", pricing[0],
                       pricing[1], "-o", "json")
    [comparison] = json.loads(compared.stdout)
    assert comparison["baseline_session_id"] == pricing[0]
    assert comparison["session_id"] == pricing[1]
    summaries = {summary["session_id"]: summary for summary in as_json}
    assert {t["figure"] for t in comparison["totals"]} == {
        "makespan_seconds", "critical_path_seconds", "makespan_lower_bound_seconds",
        "parallelism_ratio"}
    for total in comparison["totals"]:
        before = summaries[pricing[0]][total["figure"]]
        after = summaries[pricing[1]][total["figure"]]
        assert (total["baseline"], total["session"]) == (before, after)
        assert total["delta"] == after - before
        more, less = (("slower", "faster") if total["figure"].endswith("_seconds")
                      else ("higher", "lower"))
        assert total["change"] == (more if after > before else less if after < before
                                   else "same")
    assert {r["change"] for r in comparison["durations"]} <= {"slower", "faster", "same"}
    text = analyze("--archive", str(tmp_path / "archive"), "--compare", pricing[0], pricing[1])
    assert "against" in text.stdout and "delta" in text.stdout


async def test_a_session_without_a_finished_task_gets_a_report_that_says_so(
    tmp_path: Path
) -> None:
    directory = tmp_path / "archive"
    sink = ArchiveSink(directory, flush_interval=3600)
    await sink.start()
    sink.consume(Batch(sessions=[SessionInfo("s-quiet", "RUNNING", ("cpu",), 1_000_000)]))
    await sink.stop()
    result = analyze("--archive", str(directory), "s-quiet", "-o", "json",
                     "--html", str(tmp_path / "report.html"))
    assert result.returncode == 0, result.stderr
    [summary] = json.loads(result.stdout)
    assert summary["finished"] is False and "no finished task" in summary["note"]
    assert summary["tasks"]["count"] == 0 and summary["makespan_seconds"] is None
    assert "no finished task" in (tmp_path / "report.html").read_text()
    assert "no finished task" in analyze("--archive", str(directory), "s-quiet").stdout


async def test_a_live_session_still_running_gets_a_report_that_says_so(
    manual_sim: Any
) -> None:
    async with manual_sim(SCENARIO) as (sim, _):
        await sim.advance(0.001)  # tasks are created, none has ended
        session = sim.workload.session_ids[0]
        assert sim.true_tasks() and not any(t.ended_at for t in sim.true_tasks())
        result = await asyncio.to_thread(analyze, "-e", sim.endpoint, session, "-o", "json")
    assert result.returncode == 0, result.stderr
    [summary] = json.loads(result.stdout)
    assert summary["tasks"]["count"] > 0 and summary["tasks"]["ended"] == 0
    assert summary["finished"] is False and "no finished task" in summary["note"]
    # nothing is known of the work yet: no figure rather than 0
    assert summary["makespan_seconds"] is None
    assert summary["makespan_lower_bound_seconds"] is None


def test_bad_input_gives_one_line_and_exit_code_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    asyncio.run(_empty_archive(empty))
    assert_one_line_error(analyze("--archive", str(empty)), "holds no task and no session")
    assert_one_line_error(analyze("--archive", str(empty), "nope"), "unknown session 'nope'")
    assert_one_line_error(analyze("--archive", str(tmp_path / "missing")), "missing")
    assert_one_line_error(analyze("-e", DEAD, "s-1"), "ListTasksDetailed", "UNAVAILABLE")
    assert_one_line_error(analyze("-e", DEAD), "SESSION or --since")
    assert_one_line_error(analyze(), "--archive DIR or -e/--endpoint")
    assert_one_line_error(analyze("--archive", str(empty), "-e", DEAD), "one source")
    assert_one_line_error(analyze("--archive", str(empty), "--compare", "a"), "--compare")
    assert_one_line_error(analyze("--archive", str(empty), "--since", "yesterday"), "--since")
    assert_one_line_error(analyze("--archive", str(empty), "--since", "1h", "--until", "2h"),
                          "--until")


def test_the_command_line_wins_over_a_source_from_the_environment(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    asyncio.run(_empty_archive(empty))
    # An exporter's environment names its control plane: `analyze --archive` reads the archive.
    result = run_cli("analyze", "--archive", str(empty), ARMONIK_OBSERVE_ENDPOINT=DEAD)
    assert_one_line_error(result, "holds no task and no session")
    result = run_cli("analyze", "-e", DEAD, "s-1", ARMONIK_OBSERVE_ARCHIVE=str(empty))
    assert_one_line_error(result, "UNAVAILABLE")


async def test_an_unknown_session_on_a_live_control_plane_is_refused(manual_sim: Any) -> None:
    async with manual_sim(SCENARIO) as (sim, _):
        await sim.run_until_idle()
        known = sim.workload.session_ids[0]
        result = await asyncio.to_thread(analyze, "-e", sim.endpoint, known, "nope")
    assert_one_line_error(result, "unknown session 'nope'")


async def _empty_archive(directory: Path) -> None:
    sink = ArchiveSink(directory, flush_interval=3600)
    await sink.start()
    await sink.stop()


class FakeTerminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_the_progress_bar_shows_on_a_terminal_only() -> None:
    for tty in (True, False):
        stream = FakeTerminal(tty)
        bar = ProgressBar("reading tasks", stream)
        for done in (1000, 2000, 2500):
            bar(done, 2500)
        bar.close()
        assert ("reading tasks" in stream.getvalue()) is tty
        assert ("100%" in stream.getvalue()) is tty
