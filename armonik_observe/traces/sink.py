"""The trace sink: every ended task attempt becomes a span, every session a trace.

It consumes the task facts (detailed: the lists give parents and links) and the sessions that
changed. Span building runs on the event loop, a page at a time; batching, encoding and sending
run in the SDK's BatchSpanProcessor thread. A session's root span is written when the session
stops taking work or is deleted, or at `session_max_age` still open (ending at that age); the
"now" of that age is the newest server `ended_at` seen, never the exporter's clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator

from armonik_observe.exporters.exposition import Family
from armonik_observe.exporters.state_metrics import family
from armonik_observe.fact_columns import TaskFacts
from armonik_observe.model import SessionInfo
from armonik_observe.pipeline import Batch, Needs
from armonik_observe.traces.output import SpanOutput
from armonik_observe.traces.plan import session_end, session_span, task_rows, task_span
from armonik_observe.traces.producers import LiveProducers

log = logging.getLogger(__name__)
OPEN = frozenset({"RUNNING", "PAUSED"})
SESSIONS_KEPT = 100_000  # sessions whose span count or root span is remembered, at most


class TraceSink:
    """Writes one span per task attempt (and its phases) and one root span per session."""

    name = "traces"
    needs = Needs(detailed_facts=True)

    def __init__(self, output: Callable[[], SpanOutput], *, phases: bool = True,
                 max_spans_per_session: int = 100_000, session_max_age_us: int = 86_400_000_000,
                 stop_timeout: float = 10.0) -> None:
        self._make_output = output
        self.output: SpanOutput | None = None
        self.phases = phases
        self.max_spans_per_session = max_spans_per_session
        self.session_max_age_us = session_max_age_us
        self._stop_timeout = stop_timeout
        self.producers = LiveProducers()
        self._spans: OrderedDict[str, int] = OrderedDict()  # session -> spans written
        self._rooted: OrderedDict[str, None] = OrderedDict()  # sessions whose root is written
        self._open: dict[str, SessionInfo] = {}
        self._server_now_us = 0
        self.over_limit = 0
        self._stopped = False

    async def start(self) -> None:
        """Build the SDK pipeline (exporters connect on their first export)."""
        if self.output is None:
            self.output = self._make_output()

    def consume(self, batch: Batch) -> None:
        """Turn changed sessions and ended tasks into spans."""
        if self.output is None or self._stopped:
            return
        if batch.sessions:
            self._note_sessions(batch.sessions)
        if batch.facts and batch.facts.complete:
            self._write_tasks(batch.facts)
            self._close_old_sessions()

    def _write_tasks(self, facts: TaskFacts) -> None:
        assert self.output is not None
        self.producers.update(facts)
        write, producers, spans = self.output.write, self.producers, self._spans
        for row in task_rows(facts):
            session = row["session_id"]
            written = spans.get(session, 0)
            plan = task_span(row, producers, self.phases)
            count = 1 + len(plan.phases)
            if written + count > self.max_spans_per_session:  # a task's spans go whole or not
                self.over_limit += count
                continue
            write(plan)
            spans[session] = written + count
            spans.move_to_end(session)
        while len(spans) > SESSIONS_KEPT:
            spans.popitem(last=False)
        self._server_now_us = max(self._server_now_us, int(facts["ended_at"].max()))

    def _note_sessions(self, sessions: list[SessionInfo]) -> None:
        for session in sessions:
            if session.status in OPEN:
                self._open[session.session_id] = session
                continue
            self._open.pop(session.session_id, None)
            end = session_end(session)
            if end is not None:
                self._root(session, end, open_at_end=False)

    def _close_old_sessions(self) -> None:
        oldest = self._server_now_us - self.session_max_age_us
        for session in [s for s in self._open.values() if (s.created_at or 0) <= oldest]:
            del self._open[session.session_id]
            self._root(session, (session.created_at or 0) + self.session_max_age_us,
                       open_at_end=True)

    def _root(self, session: SessionInfo, end_us: int, *, open_at_end: bool) -> None:
        assert self.output is not None
        if session.session_id in self._rooted:
            return
        self.output.write(session_span(session, end_us, open_at_end))
        self._rooted[session.session_id] = None
        while len(self._rooted) > SESSIONS_KEPT:
            self._rooted.popitem(last=False)

    async def flush(self) -> None:
        """Export what is queued (bounded by the stop timeout)."""
        if self.output is not None and not self._stopped:
            await asyncio.wait_for(asyncio.to_thread(self.output.flush, self._stop_timeout),
                                   self._stop_timeout + 1)

    async def stop(self) -> None:
        """Export what is queued, then shut the SDK down; idempotent and bounded."""
        output = self.output
        if output is None or self._stopped:
            return
        self._stopped = True
        try:
            await asyncio.wait_for(asyncio.to_thread(output.flush, self._stop_timeout),
                                   self._stop_timeout + 1)
        finally:
            # Shutdown joins the SDK's export thread: bounded, and never blocking the loop.
            await asyncio.wait_for(asyncio.to_thread(output.shutdown), self._stop_timeout)

    def self_metrics(self) -> Iterator[Family]:
        """Spans each destination exported and dropped (its queue full, its export failed), and
        those over the session limit (before any destination)."""
        lanes = self.output.lanes if self.output else {}
        yield family("armonik_observe_spans_exported",
                     [((name,), float(lane.exporter.exported)) for name, lane in lanes.items()])
        dropped = [(("session_limit", ""), float(self.over_limit))]
        for name, lane in lanes.items():
            dropped += [(("queue_full", name), float(lane.queue_full)),
                        (("export_failed", name), float(lane.exporter.failed))]
        yield family("armonik_observe_spans_dropped", dropped)

    def caches(self) -> dict[str, int]:
        """Producers of results seen, and sessions whose spans are counted or still open."""
        return {"trace_producers": len(self.producers),
                "trace_sessions": len(self._spans) + len(self._open)}
