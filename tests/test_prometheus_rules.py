"""The Prometheus rules: promtool checks them and runs their unit tests; every alert is tested
firing and not firing, and links to its section of docs/runbook.md."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml
from promserver import promtool_check_rules, require_prometheus

from armonik_observe.dashboards import rules

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "dashboards" / "prometheus" / rules.RULES_FILE
UNIT_TESTS = ROOT / "dashboards" / "prometheus" / "tests" / "alerts.test.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
# level:metric:operation, e.g. partition_status:armonik_tasks_ended:rate5m
RECORD_NAME = re.compile(r"[a-z_]+:armonik_[a-z0-9_]+:[a-z0-9_]+")


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def every_rule() -> list[dict[str, Any]]:
    return [rule for group in load(RULES)["groups"] for rule in group["rules"]]


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of the headings: lower case, punctuation dropped, spaces to dashes."""
    headings = re.findall(r"^#+ (.+)$", markdown, re.MULTILINE)
    return {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_promtool_checks_the_rules() -> None:
    require_prometheus()
    ok, output = promtool_check_rules(RULES)
    assert ok, output
    assert f"SUCCESS: {len(every_rule())} rules found" in output


def test_promtool_unit_tests_pass() -> None:
    _, promtool = require_prometheus()
    result = subprocess.run([str(promtool), "test", "rules", str(UNIT_TESTS)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    alerts = {rule["alert"] for rule in every_rule() if "alert" in rule}
    firing, quiet = set(), set()
    for case in load(UNIT_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert alerts, "no alert"
    assert alerts - firing == set(), "never tested firing"
    assert alerts - quiet == set(), "never tested quiet"
    assert firing | quiet <= alerts, "a unit test names an alert that does not exist"


def test_alerts_are_documented_and_link_to_the_runbook() -> None:
    runbook = RUNBOOK.read_text(encoding="utf-8")
    sections = anchors(runbook)
    for rule in every_rule():
        if "alert" not in rule:
            continue
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(annotations), rule["alert"]
        base, _, anchor = annotations["runbook_url"].partition("#")
        assert base == rules.RUNBOOK_URL and anchor in sections, (rule["alert"], anchor)
        assert rule["alert"] in runbook, f"{rule['alert']} is missing from the runbook's table"
        assert rule["labels"]["severity"] in ("warning", "critical")


def test_recording_rules_are_named_level_metric_operation() -> None:
    records = [rule for rule in every_rule() if "record" in rule]
    assert records
    for rule in records:
        assert RECORD_NAME.fullmatch(rule["record"]), rule["record"]
        assert "job, instance" in rule["expr"], f"{rule['record']} mixes jobs or instances"
