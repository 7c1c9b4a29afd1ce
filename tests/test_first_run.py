"""What a new user hits first (issue 13): the demo run twice, start-up failures, config files,
errors, logs."""

from __future__ import annotations

import shlex
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

from conftest import START_US
from test_cli_serve import DEAD, assert_one_line_error, clean_env, run_cli, serve

from armonik_observe.config import SimulatorSettings
from armonik_observe.runner import build_simulator
from armonik_observe.simulator.builtin import builtin_scenario
from armonik_observe.simulator.clock import ManualClock
from armonik_observe.simulator.server import Simulator


async def played(salt: int) -> tuple[list[str], list[str]]:
    """A `dag` run's task ids and statuses (in creation order), on a manual clock."""
    sim = Simulator(builtin_scenario("dag"), clock=ManualClock(START_US), id_salt=salt)
    async with sim:
        await sim.run_until_idle()
        tasks = sorted(sim.true_tasks(), key=lambda t: (t.created_at, t.task_id))
        return [t.task_id for t in tasks], [t.status.name for t in tasks]


async def test_two_runs_of_one_seed_play_the_same_workload_under_new_ids() -> None:
    first_ids, first_statuses = await played(1)
    again_ids, _ = await played(1)
    other_ids, other_statuses = await played(2)
    assert again_ids == first_ids  # a salt and a seed: the same ids
    assert not set(other_ids) & set(first_ids)  # a new run: no id in common
    assert sorted(other_statuses) == sorted(first_statuses)  # the same workload
    assert len(first_ids) > 100


def test_each_run_of_the_commands_gets_a_new_salt() -> None:
    settings = SimulatorSettings.build(scenario="dag", faults="", listen="127.0.0.1:0")
    ids = {build_simulator(settings).plane.new_id() for _ in range(3)}
    assert len(ids) == 3


async def test_archive_sizes_are_current_between_two_upkeep_rounds(
    manual_sim: Any, tmp_path: Path
) -> None:
    from exporter_harness import archive_of, exporter_for, sample, settle, wait_until
    from test_archive_truth import MIXED, archive_settings, run_to_end

    from armonik_observe import archive

    directory = tmp_path / "archive"
    async with manual_sim(MIXED) as (sim, _), exporter_for(
            sim, **archive_settings(directory)) as exporter:
        output = archive_of(exporter)
        await wait_until(lambda: output.upkeep.rounds >= 1)  # the round at start: empty
        await run_to_end(sim, exporter)
        await settle(exporter)
        await output.flush()
        stats = archive.open(directory).stats()
        assert output.upkeep.rounds == 1  # no round since: the figures come from the writer
        for table in ("tasks", "events", "sessions"):
            labels = {"table": table}
            assert sample(exporter, "armonik_observe_archive_rows", labels) == \
                stats[table].rows > 0, table
            assert sample(exporter, "armonik_observe_archive_bytes", labels) == \
                stats[table].bytes, table


# -- start-up failures and Ctrl-C: one line, nothing else ----------------------------------------

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / ".venv" / "bin" / "armonik-observe"


def demo(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(SCRIPT), "demo", "--traces-file", str(tmp_path / "spans.jsonl"), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())


def test_a_demo_that_cannot_start_prints_exactly_one_line(tmp_path: Path) -> None:
    not_archive = tmp_path / "files"
    not_archive.mkdir()
    (not_archive / "notes.txt").write_text("mine")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        cases = [(("--listen", busy, "--archive", str(tmp_path / "a")), busy),
                 (("--listen", "127.0.0.1:0", "--archive", str(not_archive)), "not empty")]
        for args, needle in cases:
            process = demo(tmp_path, *args)
            _, stderr = process.communicate(timeout=60)
            assert process.returncode == 2
            assert stderr.splitlines() == [stderr.strip()], stderr  # no Server.__del__ noise
            assert stderr.startswith("armonik-observe: error: ") and needle in stderr, stderr


def test_a_double_ctrl_c_stops_cleanly(tmp_path: Path) -> None:
    process = demo(tmp_path, "--listen", "127.0.0.1:0", "--archive", str(tmp_path / "a"))
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("demo: simulator")
        process.send_signal(signal.SIGINT)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert "never awaited" not in stderr, stderr


def test_the_demo_hint_runs_as_printed(tmp_path: Path) -> None:
    env = clean_env(PATH="/usr/bin:/bin")  # as after `make demo`: the venv is not on PATH
    process = subprocess.Popen(
        [".venv/bin/armonik-observe", "demo", "--listen", "127.0.0.1:0", "--duration", "4",
         "--archive", str(tmp_path / "a"), "--traces-file", str(tmp_path / "s.jsonl")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    hint = next(line for line in out.splitlines() if "query it with:" in line)
    command = shlex.split(hint.split("query it with: ", 1)[1])
    assert command[0] == ".venv/bin/armonik-observe"
    answer = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env,
                            timeout=60)
    assert answer.returncode == 0, answer.stderr
    assert "COMPLETED" in answer.stdout


# -- config files and errors: one line that says where ------------------------------------------


def config(tmp_path: Path, text: str, suffix: str = ".yaml") -> str:
    path = tmp_path / f"config{suffix}"
    path.write_text(text)
    return str(path)


def test_an_unknown_config_key_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    path = config(tmp_path, "count_intervall: 3\n")
    assert_one_line_error(serve("-e", DEAD, "-c", path), path, "'count-intervall'",
                          "did you mean count-interval?")


def test_bad_values_name_the_file_or_the_variable_they_came_from(tmp_path: Path) -> None:
    path = config(tmp_path, "count-interval: abc\n")
    assert_one_line_error(serve("-e", DEAD, "-c", path), path, "--count-interval")
    path = config(tmp_path, "count-interval: -1\n")
    assert_one_line_error(serve("-e", DEAD, "-c", path), path, "--count-interval")
    result = serve("-e", DEAD, ARMONIK_OBSERVE_COUNT_INTERVAL="abc")
    assert_one_line_error(result, "ARMONIK_OBSERVE_COUNT_INTERVAL:", "--count-interval")
    result = serve("-e", DEAD, ARMONIK_OBSERVE_COUNT_INTERVAL="-1")
    assert_one_line_error(result, "ARMONIK_OBSERVE_COUNT_INTERVAL:", "--count-interval")


def test_bad_yaml_and_toml_say_where(tmp_path: Path) -> None:
    path = config(tmp_path, "count-interval: [1\n  b: 2\n")
    assert_one_line_error(serve("-e", DEAD, "-c", path), f"{path}:2:4", "YAML")
    path = config(tmp_path, "count-interval = \n", ".toml")
    assert_one_line_error(serve("-e", DEAD, "-c", path), path, "line 1", "TOML")


def test_usage_errors_are_one_line_like_every_other_error() -> None:
    assert_one_line_error(run_cli("serve"), "Missing option", "serve --help)")
    assert_one_line_error(serve("-e", DEAD, "--nope"), "No such option", "--help")
    assert_one_line_error(run_cli("bogus"), "No such command 'bogus'")
    assert_one_line_error(run_cli("simulate", "--speed", "fast"), "--speed", "fast")


# -- logs -----------------------------------------------------------------------------------------


def test_start_up_says_where_metrics_are_once_and_idle_polls_claim_nothing(
    tmp_path: Path,
) -> None:
    result = serve("-e", DEAD, "--duration", "3", "--archive", str(tmp_path / "a"))
    assert result.returncode == 0, result.stderr
    said = result.stdout + result.stderr
    assert said.count("metrics on") == 1, said
    assert "poll succeeded" not in result.stderr, result.stderr  # nothing answered
