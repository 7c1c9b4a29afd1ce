"""HTML building blocks of the report: escaped text, tables from frames, figures as divs, the page
around them. Plotly's JavaScript is inlined once, so the file opens with no network."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
import polars as pl
from plotly.offline import get_plotlyjs

CONFIG = {"displaylogo": False, "responsive": True}

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222;
       background: #fafafa; }
header { background: #1f2d3d; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: #c8d3df; font-size: 13px; }
main { padding: 8px 32px 48px; max-width: 1400px; }
section.session { background: #fff; border: 1px solid #e3e3e3; border-radius: 6px;
                  padding: 8px 24px 24px; margin: 24px 0; }
h2 { font-size: 19px; margin: 16px 0 8px; word-break: break-all; }
h3 { font-size: 16px; margin: 26px 0 6px; border-bottom: 1px solid #eee; padding-bottom: 4px; }
p.note { color: #555; font-size: 13px; margin: 4px 0 10px; }
p.verdict { font-size: 15px; background: #f1f6fb; border-left: 4px solid #4c78a8;
            padding: 8px 12px; }
p.empty { font-size: 15px; background: #fff4e5; border-left: 4px solid #f58518;
          padding: 8px 12px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 10px 0; }
.card { border: 1px solid #e3e3e3; border-radius: 6px; padding: 8px 14px; min-width: 130px; }
.card .value { font-size: 20px; font-weight: 600; }
.card .label { font-size: 12px; color: #666; }
table { border-collapse: collapse; font-size: 12.5px; margin: 6px 0 12px; }
th, td { border-bottom: 1px solid #eee; padding: 3px 10px; text-align: left; }
th { background: #f4f4f4; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.id { font-family: ui-monospace, monospace; font-size: 11.5px; }
nav table td a { text-decoration: none; }
"""


def text(value: Any) -> str:
    """Escaped text of any value ('-' for None)."""
    return "-" if value is None else html.escape(str(value))


def number(value: Any, digits: int = 3) -> str:
    """A number as a cell: floats rounded for reading (the JSON output has them in full)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="milliseconds")
    return text(value)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]],
          ids: Sequence[str] = ()) -> str:
    """A table; numbers right-aligned, the `ids` columns in a monospace font."""
    head = "".join(f"<th>{text(name)}</th>" for name in header)
    body = []
    for row in rows:
        cells = []
        for name, value in zip(header, row, strict=True):
            kind = "id" if name in ids else "num" if isinstance(value, int | float) else ""
            shown = number(value) if kind == "num" or isinstance(value, datetime) else text(value)
            cells.append(f'<td class="{kind}">{shown}</td>' if kind else f"<td>{shown}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def frame_table(frame: pl.DataFrame, ids: Sequence[str] = ()) -> str:
    """A table of a frame's rows, its columns as the header."""
    return table(frame.columns, frame.iter_rows(), ids)


def cards(items: Iterable[tuple[str, str]]) -> str:
    """Figures in boxes: (value, label)."""
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="value">{value}</div><div class="label">{text(label)}'
        f"</div></div>" for value, label in items) + "</div>"


class Figures:
    """Numbers the report's figures, so that each div id is unique in the page."""

    def __init__(self) -> None:
        self.count = 0

    def div(self, figure: go.Figure) -> str:
        """The figure as a div and the script that draws it (no JavaScript library inside)."""
        self.count += 1
        return pio.to_html(figure, include_plotlyjs=False, full_html=False, config=CONFIG,
                           div_id=f"figure-{self.count}", validate=False)


def page(title: str, subtitle: str, body: str) -> str:
    """The whole document: style, Plotly's JavaScript inline, the body."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{text(title)}</title><style>{STYLE}</style>"
        f"<script>{get_plotlyjs()}</script></head><body>"
        f"<header><h1>{text(title)}</h1><p>{text(subtitle)}</p></header>"
        f"<main>{body}</main></body></html>\n"
    )
