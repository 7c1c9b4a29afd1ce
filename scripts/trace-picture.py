"""Draw one session's trace from an OTLP JSON lines file as a waterfall PNG (for the docs).

usage: .venv/bin/python scripts/trace-picture.py SPANS.jsonl OUT.png [SESSION]
Without SESSION, the session with the most task spans. Needs matplotlib (the `bench` extra).
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"session": "#555555", "task": "#1f77b4", "queued": "#c7c7c7", "acquisition": "#ffbb78",
          "fetch": "#98df8a", "processing": "#2ca02c", "finalize": "#9467bd"}


def spans_of(path: Path) -> list[dict[str, Any]]:
    """Every span of the file, with its attributes as a dict."""
    spans = []
    for line in path.read_text().splitlines():
        for resource in json.loads(line)["resourceSpans"]:
            for scope in resource["scopeSpans"]:
                for span in scope["spans"]:
                    span["attrs"] = {a["key"]: next(iter(a["value"].values()))
                                     for a in span.get("attributes", [])}
                    spans.append(span)
    return spans


def ordered(spans: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """The spans depth first from the root, children by start time, with their depth."""
    children: dict[str, list[dict[str, Any]]] = defaultdict(list)
    ids = {s["spanId"] for s in spans}
    for span in spans:
        children[span.get("parentSpanId", "") if span.get("parentSpanId") in ids else ""].append(
            span)
    out: list[tuple[int, dict[str, Any]]] = []

    def walk(parent: str, depth: int) -> None:
        for span in sorted(children[parent], key=lambda s: int(s["startTimeUnixNano"])):
            out.append((depth, span))
            walk(span["spanId"], depth + 1)

    walk("", 0)
    return out


def main() -> None:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    spans = spans_of(source)
    sessions = Counter(s["traceId"] for s in spans if s["name"] == "task")
    trace = next((s["traceId"] for s in spans if len(sys.argv) > 3
                  and s["attrs"].get("armonik.session.id") == sys.argv[3]),
                 sessions.most_common(1)[0][0])
    rows = ordered([s for s in spans if s["traceId"] == trace])
    origin = min(int(s["startTimeUnixNano"]) for _, s in rows)
    figure, axis = plt.subplots(figsize=(11, 0.22 * len(rows) + 1.2))
    for index, (depth, span) in enumerate(rows):
        start = (int(span["startTimeUnixNano"]) - origin) / 1e9
        length = (int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])) / 1e9
        failed = span.get("status", {}).get("code") == "STATUS_CODE_ERROR"
        axis.barh(index, max(length, 0.002), left=start, height=0.7,
                  color="#d62728" if failed else COLORS.get(span["name"], "#1f77b4"))
        label = span["attrs"].get("armonik.task.id", span["attrs"].get("armonik.session.id", ""))
        axis.text(start, index, f"{'  ' * depth}{span['name']} {label[:8]}", va="center",
                  ha="right", fontsize=6)
    axis.invert_yaxis()
    axis.set_yticks([])
    axis.set_xlabel("seconds since the session's creation (server time)")
    session = rows[0][1]["attrs"].get("armonik.session.id", trace)
    axis.set_title(f"session {session}: {len(rows)} spans")
    figure.tight_layout()
    figure.savefig(target, dpi=110)


if __name__ == "__main__":
    main()
