"""Write the dashboards, their provisioning and the Prometheus rules: one command.

    python -m armonik_observe.dashboards.generate            # writes ./dashboards/...
    python -m armonik_observe.dashboards.generate --check    # exit 1 if a file differs

The files are committed; tests/test_dashboards_generated.py checks that regenerating them gives
the same bytes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from armonik_observe.dashboards import rules

PROMETHEUS_DIR = Path("prometheus")


def outputs(runbook_url: str = rules.RUNBOOK_URL) -> dict[Path, str]:
    """Every generated file, by path relative to the dashboards directory."""
    return {PROMETHEUS_DIR / rules.RULES_FILE: rules.render(runbook_url)}


def stale(root: Path, files: dict[Path, str]) -> list[Path]:
    """The generated files missing under `root` or differing from what is generated."""
    return [path for path, text in files.items()
            if not (root / path).is_file() or (root / path).read_text(encoding="utf-8") != text]


def write(root: Path, files: dict[Path, str]) -> None:
    """Write every generated file under `root`."""
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Generate, or with --check only compare."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("dashboards"),
                        help="the dashboards directory (default: ./dashboards)")
    parser.add_argument("--runbook-url", default=rules.RUNBOOK_URL,
                        help="where docs/runbook.md is served: alerts link to its sections")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 listing the files that differ")
    options = parser.parse_args(argv)
    files = outputs(options.runbook_url)
    if options.check:
        differ = stale(options.out, files)
        for path in differ:
            print(f"{options.out / path} is out of date", file=sys.stderr)
        return 1 if differ else 0
    write(options.out, files)
    print(f"wrote {len(files)} files under {options.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
