"""The status page at /: what an operator keeps open, rendered on the server from a snapshot.

One HTML document with its style inline: no script, no external asset, so it works offline
and behind any proxy (links are relative). It reloads itself every few seconds (`?refresh=N`,
0 for never). Times are shown in UTC and as ages ("12 s ago"), numbers with their units.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from datetime import UTC, datetime

from armonik_observe.dashboards.rules import RUNBOOK_URL
from armonik_observe.exporters.status import (
    ArchiveState,
    PartitionRow,
    SessionRow,
    StatusSnapshot,
    TracesState,
)
from armonik_observe.model import TASK_STATUS_RANK

DOCS_URL = RUNBOOK_URL.rsplit("/", 1)[0] + "/"
DEFAULT_REFRESH_S = 5
# Columns of the task table in life-cycle order; a status no partition holds is not shown.
STATUS_ORDER = tuple(s.name for s in sorted(TASK_STATUS_RANK, key=lambda s: (
    TASK_STATUS_RANK[s], s.value)) if s.name != "UNSPECIFIED")
_TONE = {"HEALTHY": "good", "DEGRADED": "warn", "UNHEALTHY": "bad", "ERROR": "bad",
         "TIMEOUT": "bad", "CANCELLED": "warn", "RETRIED": "warn", "COMPLETED": "good",
         "RUNNING": "good", "PAUSED": "warn", "connected": "good", "connecting": "warn",
         "degraded": "bad"}

_STYLE = """
:root{--bg:#f5f6f8;--card:#fff;--ink:#1d2330;--mute:#667085;--line:#e4e7ec;--accent:#2f6fde;
--good:#12805c;--good-bg:#e3f5ec;--warn:#a15c00;--warn-bg:#fff1d6;--bad:#b42318;--bad-bg:#fde8e7}
@media (prefers-color-scheme:dark){:root{--bg:#11151c;--card:#1a202a;--ink:#e6e9ef;
--mute:#98a2b3;--line:#2b3340;--accent:#6b9bff;--good:#4ade9b;--good-bg:#123324;--warn:#f5b94c;
--warn-bg:#3a2a0c;--bad:#ff7b72;--bad-bg:#3d1513}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,
"Segoe UI",Roboto,sans-serif}
header{background:var(--card);border-bottom:1px solid var(--line);padding:14px 20px;display:flex;
flex-wrap:wrap;gap:8px 20px;align-items:center}
header h1{font-size:18px;margin:0}
header .where{color:var(--mute);overflow-wrap:anywhere}
header nav{margin-left:auto;display:flex;gap:14px;flex-wrap:wrap}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
main{padding:16px 20px;display:grid;gap:16px;grid-template-columns:repeat(auto-fit,
minmax(min(100%,420px),1fr))}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px;
min-width:0}
section.wide{grid-column:1/-1}
h2{font-size:13px;text-transform:uppercase;letter-spacing:.06em;color:var(--mute);margin:0 0 10px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);white-space:nowrap}
th{font-weight:600;color:var(--mute);font-size:12px}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto}
.pill{display:inline-block;padding:1px 9px;border-radius:999px;font-size:12px;font-weight:600;
background:var(--line)}
.good{color:var(--good);background:var(--good-bg)}.warn{color:var(--warn);
background:var(--warn-bg)}.bad{color:var(--bad);background:var(--bad-bg)}
.state{font-size:15px;padding:3px 14px}
.mute{color:var(--mute)}.zero{color:var(--line)}
.big{font-size:28px;font-weight:650;font-variant-numeric:tabular-nums}
td.wrap{white-space:normal;min-width:180px}
.bar{position:relative;height:8px;border-radius:4px;background:var(--line);min-width:48px}
.bar span{position:absolute;left:0;top:0;bottom:0;border-radius:4px;background:var(--accent)}
.reasons{margin:0;padding:10px 16px 10px 32px;border-radius:8px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 14px;margin:0}
dt{color:var(--mute)}dd{margin:0;overflow-wrap:anywhere}
footer{padding:4px 20px 20px;color:var(--mute);font-size:12px}
@media (max-width:600px){header,main{padding:12px}section{padding:12px}}
"""


def render_status_page(snapshot: StatusSnapshot, version: str,
                       refresh_s: int = DEFAULT_REFRESH_S) -> str:
    """The whole page: state, control plane, tasks, sessions, exporter, archive and traces."""
    sections = [_health(snapshot), _throughput(snapshot), _tasks(snapshot),
                _sessions(snapshot), _exporter(snapshot)]
    if snapshot.archive is not None:
        sections.append(_archive(snapshot.archive, snapshot.at))
    if snapshot.traces is not None:
        sections.append(_traces(snapshot.traces))
    reload = f'<meta http-equiv="refresh" content="{refresh_s}">' if refresh_s > 0 else ""
    every = f"reloads every {refresh_s} s" if refresh_s > 0 else "does not reload (?refresh=0)"
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
{reload}<title>armonik-observe</title><style>{_STYLE}</style></head>
<body>
<header><h1>armonik-observe</h1>{_state(snapshot)}
<span class="where">{_e(snapshot.endpoint)} · updated {_clock(snapshot.at)}</span>
<nav><a href="metrics">/metrics</a><a href="health">/health</a>
<a href="{DOCS_URL}metrics.md">metrics reference</a><a href="{DOCS_URL}runbook.md">runbook</a>
<a href="{DOCS_URL}">docs</a></nav></header>
{_reasons(snapshot)}<main>
{"".join(sections)}</main>
<footer>armonik-observe {_e(version)} · this page {every}</footer>
</body>
</html>
"""


# -- sections ---------------------------------------------------------------------------------


def _state(snapshot: StatusSnapshot) -> str:
    if not snapshot.up:
        return '<span class="pill state bad">DOWN</span>'
    if not snapshot.readiness.ready:
        return '<span class="pill state warn">UP · NOT READY</span>'
    return '<span class="pill state good">UP · READY</span>'


def _reasons(snapshot: StatusSnapshot) -> str:
    reasons = snapshot.readiness.reasons
    if not reasons:
        return ""
    items = "".join(f"<li>{_e(reason)}</li>" for reason in reasons)
    return f'<div style="padding:12px 20px 0"><ul class="reasons warn">{items}</ul></div>\n'


def _health(snapshot: StatusSnapshot) -> str:
    messages = any(h.message for h in snapshot.health)
    rows = "".join(
        f"<tr><td>{_e(h.service)}</td><td>{_pill(h.status)}</td>"
        f'<td class="mute">{_ago(snapshot.at - h.observed_at)}</td>'
        + (f'<td class="wrap">{_e(h.message)}</td>' if messages else "") + "</tr>"
        for h in snapshot.health)
    head = "<th>service</th><th>state</th><th>checked</th>" + (
        "<th>message</th>" if messages else "")
    table = (f'<div class="scroll"><table><tr>{head}</tr>{rows}</table></div>' if rows else
             '<p class="mute">No health check answered yet.</p>')
    versions = ""
    if snapshot.versions is not None:
        core, api = snapshot.versions
        versions = f'<p class="mute">ArmoniK Core {_e(core)} · API {_e(api)}</p>'
    return f'<section id="health"><h2>Control plane</h2>{table}{versions}</section>\n'


def _throughput(snapshot: StatusSnapshot) -> str:
    rows = snapshot.partitions
    total = sum(p.ended_per_second for p in rows)
    top = max((p.ended_per_second for p in rows), default=0.0) or 1.0
    bars = "".join(
        f'<tr><td>{_e(p.partition_id)}</td><td class="num">{_rate(p.ended_per_second)}</td>'
        f'<td style="width:50%">{_bar(p.ended_per_second / top)}</td>'
        f'<td class="num mute">{p.ended_total:,}</td></tr>' for p in rows)
    bars = ('<tr><th>partition</th><th class="num">ended</th><th></th>'
            f'<th class="num">since start</th></tr>{bars}')
    return (f'<section id="throughput"><h2>Throughput, last minute</h2>'
            f'<div class="big">{_rate(total)}</div><p class="mute" style="margin-top:0">tasks '
            f"ended per second (every final status), {sum(p.ended_total for p in rows):,} "
            f'since the exporter started counting</p><div class="scroll"><table>{bars}</table>'
            f"</div></section>\n")


def _tasks(snapshot: StatusSnapshot) -> str:
    rows = snapshot.partitions
    held = {status for p in rows for status, n in p.counts.items() if n}
    columns = [s for s in STATUS_ORDER if s in held] + sorted(held - set(STATUS_ORDER))
    head = "".join(f'<th class="num">{_e(s.lower())}</th>' for s in columns)
    body = "".join(_task_row(p, columns) for p in rows)
    if not rows:
        return ('<section id="tasks" class="wide"><h2>Tasks by status</h2><p class="mute">'
                "No partition counted yet.</p></section>\n")
    return (f'<section id="tasks" class="wide"><h2>Tasks by status, per partition</h2>'
            f'<div class="scroll"><table><tr><th>partition</th>{head}<th class="num">stuck</th>'
            f'<th class="num">pod max</th></tr>{body}</table></div></section>\n')


def _task_row(row: PartitionRow, columns: list[str]) -> str:
    cells = "".join(_count(row.counts.get(status, 0)) for status in columns)
    stuck = f'<span class="pill bad">{row.stuck:,}</span>' if row.stuck else "0"
    pods = "" if row.pod_max is None else f"{row.pod_max:,}"
    return (f"<tr><td>{_e(row.partition_id)}</td>{cells}<td class=\"num\">{stuck}</td>"
            f'<td class="num mute">{pods}</td></tr>')


def _sessions(snapshot: StatusSnapshot) -> str:
    chips = " ".join(f"{_pill(status)} {n:,}" for status, n in sorted(
        snapshot.session_totals.items()) if n)
    rows = "".join(_session_row(row, snapshot.at) for row in snapshot.sessions)
    more = snapshot.followed - len(snapshot.sessions)
    notes = [f"{more:,} more followed" if more > 0 else "",
             f"{snapshot.unfollowed:,} active not followed (--max-followed-sessions)"
             if snapshot.unfollowed else ""]
    note = " · ".join(n for n in notes if n)
    table = (f'<div class="scroll"><table><tr><th>session</th><th>status</th><th>partition'
             f'</th><th>application</th><th>progress</th><th class="num">tasks</th><th>ETA</th>'
             f"<th>deadline</th><th>opened</th></tr>{rows}</table></div>" if rows else
             '<p class="mute">No session followed.</p>')
    return (f'<section id="sessions" class="wide"><h2>Sessions</h2><p>{chips or "none"}</p>'
            f'{table}{f"<p class=mute>{_e(note)}</p>" if note else ""}</section>\n')


def _session_row(row: SessionRow, now: float) -> str:
    share = row.ended / row.total if row.total else 0.0
    # As the alert ArmonikSessionMissesDeadline: past it with tasks left, or ending after it.
    late = row.deadline is not None and row.ended < row.total and (
        now > row.deadline or (row.eta_seconds is not None
                               and now + row.eta_seconds > row.deadline))
    deadline = "" if row.deadline is None else _until(row.deadline - now)
    if late:
        deadline = f'<span class="pill bad">late</span> due {deadline}'
    eta = ("done" if row.total and row.ended == row.total else
           "—" if row.eta_seconds is None else f"in {_duration(row.eta_seconds)}")
    opened = "" if row.created_at is None else _ago(now - row.created_at)
    return (f'<tr><td title="{_e(row.session_id)}"><code>{_e(row.session_id[:8])}</code></td>'
            f"<td>{_pill(row.status)}</td><td>{_e(row.partition)}</td>"
            f"<td>{_e(row.application)}</td><td>{_bar(share)}</td>"
            f'<td class="num">{row.ended:,} / {row.total:,}</td><td>{eta}</td>'
            f'<td>{deadline}</td><td class="mute">{opened}</td></tr>')


def _exporter(snapshot: StatusSnapshot) -> str:
    streams = ", ".join(f"{_pill(state)} {n:,}" for state, n in sorted(
        snapshot.streams.items())) or "none"
    watermark = _moment(snapshot.facts_watermark, snapshot.at)
    last_event = ("none yet" if snapshot.last_event_at is None
                  else _ago(snapshot.at - snapshot.last_event_at))
    facts = _dl([
        ("state", "up" if snapshot.up else "down: the control plane does not answer"),
        ("ready", "yes" if snapshot.readiness.ready else "no"),
        ("event streams", streams),
        ("events received", f"{snapshot.events_received:,}, the last {last_event}"),
        ("reconnections", f"{snapshot.reconnects:,}"),
        ("tasks tracked", f"{snapshot.tasks_tracked:,}"),
        ("task ends read up to", watermark),
    ], escape=False)
    pollers = "".join(
        f"<tr><td>{_e(p.name)}</td><td>{_pill(_poller_state(p.ok))}</td><td class=\"mute\">"
        f"{'' if p.seconds_since_success is None else _ago(p.seconds_since_success)}</td>"
        f'<td class="num">{_count(p.errors, cell=False)}</td>'
        f'<td class="mute wrap">{_e(p.last_failure)}</td></tr>' for p in snapshot.pollers)
    return (f'<section id="exporter"><h2>Exporter</h2>{facts}<div class="scroll" '
            f'style="margin-top:10px"><table><tr><th>poller</th><th>state</th><th>last success'
            f'</th><th class="num">errors</th><th>last failure</th></tr>{pollers}</table></div>'
            f"</section>\n")


def _poller_state(ok: bool | None) -> str:
    return "waiting" if ok is None else "HEALTHY" if ok else "UNHEALTHY"


def _archive(archive: ArchiveState, now: float) -> str:
    last = _moment(archive.last_write_at, now)
    problems = [f"{archive.write_errors:,} failed writes" if archive.write_errors else "",
                f"{archive.dropped_rows:,} rows dropped" if archive.dropped_rows else ""]
    return ('<section id="archive"><h2>Archive</h2>' + _dl([
        ("directory", _e(archive.directory)),
        ("on disk", f"{archive.rows:,} rows, {_bytes(archive.bytes)} (as last measured)"),
        ("written by this run", f"{archive.rows_written:,} rows"),
        ("last write", last),
        ("problems", _e(", ".join(p for p in problems if p)) or "none"),
    ], escape=False) + "</section>\n")


def _traces(traces: TracesState) -> str:
    rows = []
    for to in traces.destinations:
        lost = ", ".join(f"{n:,} {reason}" for reason, n in (
            ("queue full", to.queue_full), ("export failed", to.export_failed)) if n)
        rows.append((f"to {to.words}", f"{to.exported:,} exported; dropped: {lost or 'none'}"))
    rows.append(("over the session limit", f"{traces.session_limit:,}"))
    return ('<section id="traces"><h2>Traces</h2>' + _dl(rows, escape=False) + "</section>\n")


# -- pieces -----------------------------------------------------------------------------------


def _e(text: object) -> str:
    return html.escape(str(text))


def _pill(status: str) -> str:
    return f'<span class="pill {_TONE.get(status, "")}">{_e(status)}</span>'


def _count(value: int, cell: bool = True) -> str:
    text = '<span class="zero">0</span>' if value == 0 else f"{value:,}"
    return f'<td class="num">{text}</td>' if cell else text


def _bar(share: float) -> str:
    width = max(0.0, min(1.0, share)) * 100
    return f'<div class="bar" title="{width:.0f}%"><span style="width:{width:.1f}%"></span></div>'


def _dl(items: Iterable[tuple[str, str]], escape: bool = True) -> str:
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v) if escape else v}</dd>" for k, v in items)
    return f"<dl>{rows}</dl>"


def _rate(per_second: float) -> str:
    return f"{per_second:,.1f}/s" if per_second < 100 else f"{per_second:,.0f}/s"


def _bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _duration(seconds: float) -> str:
    """A duration for people: 42 s, 3 min 05 s, 2 h 10 min, 3 d 4 h."""
    if not math.isfinite(seconds):
        return "—"
    whole = round(max(0.0, seconds))
    for size, unit, below, small in ((86_400, "d", 3600, "h"), (3600, "h", 60, "min"),
                                     (60, "min", 1, "s")):
        if whole >= size:
            rest = (whole % size) // below
            return f"{whole // size} {unit}" + (f" {rest:02d} {small}" if rest else "")
    return f"{whole} s"


def _ago(seconds: float) -> str:
    return "just now" if seconds < 1 else f"{_duration(seconds)} ago"


def _until(seconds: float) -> str:
    return f"in {_duration(seconds)}" if seconds >= 0 else f"{_duration(-seconds)} ago"


def _moment(epoch_s: float | None, now: float) -> str:
    """A time in UTC and its age, or "none yet"."""
    return "none yet" if epoch_s is None else f"{_clock(epoch_s)} ({_ago(now - epoch_s)})"


def _clock(epoch_s: float) -> str:
    moment = datetime.fromtimestamp(epoch_s, UTC)
    return (f'<time datetime="{moment.isoformat()}">{moment:%Y-%m-%d %H:%M:%S} UTC</time>')
