"""What every benchmark prints and writes: rows with their meaning and target, tables, JSON.

A `Row` is one figure: its value, its target (if it has one) and how the value compares, what the
figure means and what this run noticed beside it. `Run` gathers a benchmark's rows by section,
its JSON results and its failures (a measurement that fails is shown and recorded, and the others
still run); `Run.finish` prints the table and writes `bench/results/<name>.json`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from bench.common import REPO_DIR, BenchError

RESULTS_DIR = REPO_DIR / "bench" / "results"
NOISY = 0.2  # other processes took more than this many cores: rates are noisy, read ratios
SATURATED = 0.85  # a CPU share above this means the process is CPU-bound (one Python thread)
KEEPS_UP = 0.95  # received/generated above this: no backlog builds up
NOISE_MEANS = "cores other processes used meanwhile (above 0.2: read ratios, not rates)"


# -------------------------------------------------------------------------------------- rows


@dataclass
class Row:
    """One figure of a result table.

    `target` is what the figure should reach (None: the figure is context, with no target of its
    own); `verdict` says how the value compares with it; `means` says what the figure is; `note`
    what this run noticed beside it (CPU shares, rounds, counts).
    """

    metric: str
    value: float | str
    unit: str = ""
    target: float | str | None = None
    verdict: str = ""
    means: str = ""
    note: str = ""

    def cells(self) -> list[str]:
        """The row as table cells: figure, value, target, verdict."""
        target = "none" if self.target is None else f"{fmt(self.target)} {self.unit}".strip()
        return [self.metric, f"{fmt(self.value)} {self.unit}".strip(), target, self.verdict]

    def explanation(self) -> str:
        """What the figure means, then what this run noticed, on one line."""
        return " -- ".join(part for part in (self.means, self.note) if part)


def fmt(value: float | str) -> str:
    """A number with a precision that suits its size; strings unchanged."""
    if isinstance(value, str):
        return value
    if value == 0 or abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def ratio_verdict(value: float, target: float, higher_is_better: bool = True,
                  ok_at: float = 1.0) -> str:
    """'x0.85 LOW' style comparison of a value with its target (ok from `ok_at` x target)."""
    if not target:
        return ""
    ratio = value / target
    ok = ratio >= ok_at if higher_is_better else ratio <= ok_at
    return f"x{ratio:.2f} {'ok' if ok else 'LOW' if higher_is_better else 'HIGH'}"


def ratio_row(label: str, value: float, target: float, unit: str = "", *, means: str = "",
              note: str = "", higher_is_better: bool = True, ok_at: float = 1.0) -> Row:
    """A figure compared with its target."""
    return Row(label, value, unit, target,
               ratio_verdict(value, target, higher_is_better, ok_at), means, note)


def other_row(label: str, share: float) -> Row:
    """How many cores other processes used meanwhile: above NOISY the figures are noisy."""
    return Row(label, share, "cores", NOISY, "quiet" if share < NOISY else "NOISY", NOISE_MEANS)


def cpu_row(label: str, share: float, means: str) -> Row:
    """A CPU share (CPU seconds / wall seconds): flagged when the process is CPU-bound."""
    return Row(label, share, "", f"<{SATURATED}", "ok" if share < SATURATED else "SATURATED",
               means)


def info_row(label: str, value: float | str, unit: str = "", *, means: str,
             note: str = "") -> Row:
    """A figure given as context: no target of its own."""
    return Row(label, value, unit, None, "", means, note)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = math.ceil(q * len(sorted_values))
    return sorted_values[min(len(sorted_values), max(rank, 1)) - 1]


# ------------------------------------------------------------------------------------ tables


def format_table(sections: Mapping[str, Sequence[Row]], title: str = "") -> str:
    """Rows as an aligned plain-text table, section by section; under each figure, what it
    means (and what this run noticed)."""
    header = ["figure", "value", "target", "vs target"]
    rows = [row for section in sections.values() for row in section]
    cells = [header, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]

    def line(parts: Sequence[str]) -> str:
        first, value, target, verdict = parts
        return "  ".join([first.ljust(widths[0]), value.rjust(widths[1]),
                          target.rjust(widths[2]), verdict]).rstrip()

    out = [title] if title else []
    out += [line(header), "  ".join("-" * w for w in widths)]
    for name, section in sections.items():
        if not section:
            continue
        if name:
            out.append(f"[{name}]")
        for row in section:
            out.append(line(row.cells()))
            if row.explanation():
                out.append(f"    {row.explanation()}")
    return "\n".join(out)


def print_table(sections: Mapping[str, Sequence[Row]], title: str = "") -> None:
    """Print `format_table(sections, title)` and flush."""
    print(format_table(sections, title), flush=True)


# ----------------------------------------------------------------------------------- results


def git_revision() -> str:
    """The repository's commit, with '+dirty' when tracked files have changed; '' without git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=REPO_DIR, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, cwd=REPO_DIR, check=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return commit + ("+dirty" if dirty else "")


def environment() -> dict[str, Any]:
    """What a result depends on: code revision, machine, Python and the load when it ran."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "revision": git_revision(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "loadavg": load,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_results(name: str, data: dict[str, Any]) -> Path:
    """Write `bench/results/<name>.json` (with the environment added) and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"benchmark": name, "environment": environment(), **data}
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    return path


def short(error: BaseException, limit: int = 200) -> str:
    """An error message on one line, cut to `limit` characters."""
    return " ".join(str(error).split())[:limit]


FAILURES = (BenchError, grpc.RpcError, OSError, subprocess.TimeoutExpired, ValueError)


class Run:
    """One benchmark run: JSON results, table rows by section, failures, time per phase."""

    def __init__(self, name: str, title: str, sections: Iterable[str] = ()) -> None:
        self.name = name
        self.title = title
        self.results: dict[str, Any] = {}
        self.sections: dict[str, list[Row]] = {section: [] for section in sections}
        self.failed: list[dict[str, Any]] = []
        self.phases: dict[str, float] = {}
        self.started = self._mark = time.monotonic()

    def add(self, section: str, rows: Iterable[Row]) -> None:
        """Table rows of one section (sections print in the order first given)."""
        self.sections.setdefault(section, []).extend(rows)

    def attempt(self, key: str, measure: Callable[..., Any], *args: Any, section: str = "",
                keep: bool = True) -> Any:
        """Run a measurement; a failure is recorded and shown without stopping the others.

        Returns None on failure, and when the measurement returns {"error": ...} (it could not
        run: shown as skipped, not failed). With `keep`, the result is kept under `key`.
        """
        try:
            value = measure(*args)
        except FAILURES as error:
            self.fail(key, short(error), section)
            return None
        if isinstance(value, dict) and "error" in value:
            self.results[key] = value
            self.add(section or key, [Row(key, "skipped", note=value["error"])])
            return None
        if keep:
            self.results[key] = value
        return value

    def fail(self, key: str, message: str, section: str = "") -> None:
        """Record that the measurement `key` failed: shown, kept in the results and errors."""
        print(f"  {key} failed: {message}", file=sys.stderr, flush=True)
        self.failed.append({"measure": key, "error": message})
        self.results[key] = {"error": message}
        self.add(section or key, [Row(key, "ERROR", note=message)])

    def phase(self, name: str) -> None:
        """Close the phase `name`: its wall time since the previous one."""
        now = time.monotonic()
        self.phases[name] = round(now - self._mark, 1)
        self._mark = now

    def finish(self) -> None:
        """Print the table, write the JSON; exit with status 1 if a measurement failed."""
        total = round(time.monotonic() - self.started, 1)
        self.results.update(phase_s=self.phases, errors=self.failed, total_runtime_s=total)
        print()
        print_table(self.sections, f"{self.title} ({total}s)")
        print(f"\nwrote {write_results(self.name, self.results)}")
        if self.failed:
            sys.exit(1)


# ----------------------------------------------------------------------------------- options


def parse_args(parser: argparse.ArgumentParser, quick: Mapping[str, Any],
               argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parser's options, plus --quick: `quick`'s defaults instead (options still win)."""
    shown = ", ".join(f"--{key.replace('_', '-')} {value}" for key, value in quick.items())
    parser.add_argument("--quick", action="store_true", help=f"a short run: {shown}")
    known, _ = parser.parse_known_args(argv)
    if known.quick:
        parser.set_defaults(**quick)
    return parser.parse_args(argv)
