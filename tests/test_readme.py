"""The README runs as written: its Python blocks and its `armonik-observe sql/archive` command
lines, against a small archive of a simulated run, in a directory where it is `demo-archive`."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
from analytics_truth import archive_truth

from armonik_observe.simulator.scenario import scenario_from_dict

README = Path(__file__).resolve().parents[1] / "README.md"
COMMAND = re.compile(r"^(?:\.venv/bin/)?armonik-observe (sql|archive) ")
SCENARIO = scenario_from_dict({
    "name": "readme", "seed": 5,
    "partitions": [{"id": "pricing", "pods": 3}, {"id": "default", "pods": 2}],
    "sessions": [
        {"name": "pricing", "partition": "pricing", "count": 2, "every": 5,
         "graph": {"kind": "bag", "tasks": 30},
         "profile": {"processing": {"kind": "exponential", "mean": 0.5}, "error_rate": 0.1}},
        {"name": "chain", "partition": "default", "graph": {"kind": "chain", "tasks": 5}},
    ],
})


def blocks(language: str) -> list[str]:
    """The README's fenced blocks of one language."""
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def command_lines() -> list[list[str]]:
    """The README's `armonik-observe sql` and `archive` commands, as argument lists (a quoted
    argument may span lines)."""
    commands, pending = [], ""
    for line in (line for block in blocks("sh") for line in block.splitlines()):
        pending = f"{pending}\n{line}" if pending else line
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # an open quote: the command goes on
            continue
        if COMMAND.match(pending):
            commands.append(words)
        pending = ""
    return commands


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding `demo-archive`, an archive of a small simulated run."""
    return tmp_path_factory.mktemp("readme")


@pytest.fixture
async def truth(manual_sim: Any, workdir: Path) -> list[Any]:
    async with manual_sim(SCENARIO) as (sim, _):
        await sim.run_until_idle()
        if not (workdir / "demo-archive").exists():
            await archive_truth(sim, workdir / "demo-archive")
        return sim.true_tasks()


def run(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=workdir, capture_output=True, text=True,
                          timeout=120)


def test_the_readme_python_blocks_run_as_written(workdir: Path, truth: list[Any]) -> None:
    (code,) = blocks("python")
    done = run(workdir, "-c", code)
    assert done.returncode == 0, done.stderr
    pricing = sorted((t for t in truth if t.partition_id == "pricing"),
                     key=lambda t: -(t.processing_to_end or 0))
    assert all(t.task_id in done.stdout for t in pricing[:3])  # the example's own answer
    assert "COMPLETED" in done.stdout and "RETRIED" in done.stdout


def test_the_readme_sql_and_archive_commands_run_as_written(
    workdir: Path, truth: list[Any]
) -> None:
    commands = command_lines()
    assert len(commands) >= 4
    for words in commands:
        arguments, redirect = words[1:], None
        if ">" in arguments:
            at = arguments.index(">")
            arguments, redirect = arguments[:at], arguments[at + 1]
        done = run(workdir, "-m", "armonik_observe.cli", *arguments)
        assert done.returncode == 0, (words, done.stderr)
        if redirect is not None:
            (workdir / redirect).write_text(done.stdout)
    assert (workdir / "sessions.csv").read_text().startswith("session_id,")
    with duckdb.connect(str(workdir / "archive.duckdb"), read_only=True) as exported:
        assert exported.sql("SELECT count(*) FROM tasks").fetchall() == [(len(truth),)]
    assert (workdir / "clean" / "tasks.parquet").is_file()
