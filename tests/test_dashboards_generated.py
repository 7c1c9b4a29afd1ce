"""The committed dashboards, provisioning, rules and panel reference are what the code generates:
regenerating them (`python -m armonik_observe.dashboards.generate`) changes no byte."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from armonik_observe.dashboards import generate

ROOT = Path(__file__).resolve().parents[1]


def test_regenerating_gives_the_committed_files() -> None:
    files = generate.outputs(ROOT)
    assert {path.parts[0] for path in files} == {"dashboards", "docs"}
    problems = []
    for path, want in files.items():
        committed = ROOT / path
        got = committed.read_text(encoding="utf-8") if committed.is_file() else ""
        if got != want:
            diff = difflib.unified_diff(got.splitlines(), want.splitlines(), str(path),
                                        "generated", lineterm="", n=1)
            problems.append("\n".join(list(diff)[:40]))
    if problems:
        pytest.fail("out of date; run `python -m armonik_observe.dashboards.generate`:\n"
                    + "\n".join(problems), pytrace=False)


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    files = generate.outputs(ROOT)
    generate.write(tmp_path, files)
    assert generate.main(["--root", str(tmp_path), "--check"]) == 0
    rules = tmp_path / "dashboards" / "prometheus" / "armonik-observe.rules.yml"
    rules.write_text(rules.read_text() + "# edited by hand\n")
    assert generate.main(["--root", str(tmp_path), "--check"]) == 1
    assert generate.stale(tmp_path, files) == [rules.relative_to(tmp_path)]
