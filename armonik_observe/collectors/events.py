"""Event streams: one GetEvents stream per followed session, reconnected with backoff.

Events carry no timestamp: each is stamped with the exporter's clock when received. On
(re)subscription the server replays a snapshot of every task with its current status; the
tracker turns that replay, duplicates and reordering into real progress only. Received events
are handed to the pipeline in batches, by size or at least every `flush_interval`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable

import grpc
from armonik.protogen.client.events_service_pb2_grpc import EventsStub
from armonik.protogen.common import events_common_pb2 as ev

from armonik_observe.collectors import convert
from armonik_observe.collectors.lag import LagMonitor
from armonik_observe.collectors.poller import Publish
from armonik_observe.collectors.retry import Connection, StopRequested
from armonik_observe.collectors.supervision import Mishaps
from armonik_observe.collectors.tracker import RECENT_END_SECONDS, Budget, TaskTracker
from armonik_observe.exporters.exposition import Family
from armonik_observe.fact_columns import TaskFacts
from armonik_observe.model import (
    TERMINAL_TASK_STATUSES,
    EventKind,
    SessionEvent,
    SessionInfo,
)
from armonik_observe.pipeline import Batch, Needs

log = logging.getLogger(__name__)

TASK_KINDS = (EventKind.NEW_TASK, EventKind.TASK_STATUS_UPDATE)
ALL_KINDS = tuple(EventKind)  # with the archive on: result events too
CONNECTING, CONNECTED, DEGRADED = "connecting", "connected", "degraded"
# Task facts judged against the streams' memory of ends allow the server's clock this much lead
# over the exporter's (a larger lead only leaves late facts unjudged when the facts run late).
CLOCK_SLACK_SECONDS = 20
_TERMINAL = frozenset(s.name for s in TERMINAL_TASK_STATUSES)


class EventStreams:
    """Holds one stream per followed session and publishes the progress they report."""

    def __init__(
        self,
        *,
        connection: Connection,
        publish: Publish,
        budget: Budget,
        kinds: Iterable[EventKind] = TASK_KINDS,
        batch_size: int = 5000,
        flush_interval: float = 0.2,
        max_lag: float = 120.0,
        degraded_for: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._connection = connection
        self._publish = publish
        self.budget = budget
        self.trackers: dict[str, TaskTracker] = {}
        self._kinds = [int(k) for k in kinds]
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._clock = clock
        self._streams: dict[str, asyncio.Task[None]] = {}
        self.states: dict[str, str] = {}
        # by the name of the update's oneof field: new_task, task_status_update, ...
        self.received: Counter[str] = Counter(dict.fromkeys(
            (EventKind(k).name.lower() for k in self._kinds), 0))
        self.reconnects = 0
        self.last_event_at: float | None = None
        self._buffer: list[SessionEvent] = []
        self._stop = asyncio.Event()
        self.lag = LagMonitor()
        self.max_lag = max_lag
        self.degraded_for = degraded_for
        self._degraded_until: dict[str, float] = {}
        self._wanted: set[str] = set()
        self._state_changed = asyncio.Event()
        self.mishaps = Mishaps("events")

    # -- life cycle ---------------------------------------------------------------------------

    def follow(self, sessions: list[SessionInfo]) -> None:
        """Open streams for newly followed sessions and close those no longer followed."""
        self._wanted = wanted = {s.session_id for s in sessions}
        for session_id in list(self._streams):
            if session_id not in wanted:
                self._close(session_id)
                self.states.pop(session_id, None)
                self.lag.forget(session_id)
        for session_id in set(self._degraded_until) - wanted:
            del self._degraded_until[session_id]
            self.states.pop(session_id, None)
            self.lag.forget(session_id)
        for session_id in wanted - set(self._streams) - set(self._degraded_until):
            self._open(session_id)

    def _open(self, session_id: str) -> None:
        self.trackers[session_id] = TaskTracker(self.budget)
        self._streams[session_id] = asyncio.create_task(
            self._follow(session_id), name=f"events-{session_id}"
        )

    def _close(self, session_id: str) -> None:
        self._streams.pop(session_id).cancel()
        self.trackers.pop(session_id).clear()

    def note_facts(self, facts: TaskFacts) -> None:
        """Match authoritative task ends against the streams, to measure their lag."""
        trackers = self.trackers

        def delivered(session_id: str, task_id: str) -> bool:
            tracker = trackers.get(session_id)  # None: closed, its stream not yet unwound
            return tracker is None or tracker.has_ended(task_id)

        remembered_since_s = self._clock() - RECENT_END_SECONDS + CLOCK_SLACK_SECONDS
        self.lag.note_facts(facts, delivered, int(remembered_since_s * 1_000_000))

    def _check_lag(self) -> None:
        """Degrade a stream that fell too far behind; retry it after `degraded_for`."""
        now = self._clock()
        for session_id in list(self._streams):
            if self.lag.lag_seconds(session_id) > self.max_lag:
                log.warning("event stream of session %s is %.0fs behind: degraded to counts "
                            "and task facts for %.0fs", session_id,
                            self.lag.lag_seconds(session_id), self.degraded_for)
                self._close(session_id)
                self.lag.forget(session_id)
                self._set_state(session_id, DEGRADED)
                self._degraded_until[session_id] = now + self.degraded_for
        for session_id, until in list(self._degraded_until.items()):
            if until <= now:
                del self._degraded_until[session_id]
                if session_id in self._wanted:
                    self._open(session_id)

    async def run(self, stop: asyncio.Event) -> None:
        """Flush received events every `flush_interval` until `stop`, then close every stream."""
        self._stop = stop
        try:
            while not stop.is_set():
                with contextlib.suppress(StopRequested):
                    await Connection.wait(self._flush_interval, stop)
                self._tick()
        finally:
            await self._close_all()
            self.flush()

    def _tick(self) -> None:
        try:
            self.flush()
            self._check_lag()
        except Exception as error:  # counted and logged; the next tick tries again
            self.mishaps.record(error)

    async def _close_all(self) -> None:
        streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream.cancel()
        await asyncio.gather(*streams, return_exceptions=True)

    def flush(self) -> None:
        """Publish the events received since the last flush."""
        if self._buffer:
            batch, self._buffer = self._buffer, []
            self._publish(Batch(events=batch))

    # -- one stream ---------------------------------------------------------------------------

    async def _follow(self, session_id: str) -> None:
        attempt = 0
        request = ev.EventSubscriptionRequest(session_id=session_id, returned_events=self._kinds)
        while not self._stop.is_set():
            self._set_state(session_id, CONNECTING)
            try:
                received = await self._stream_once(session_id, request)
            except Exception as error:  # not a gRPC error: a bug or a malformed message
                self.mishaps.record(error)
                received = 0
            else:
                if received:
                    self.mishaps.recovered()
            attempt = 0 if received else attempt + 1
            self.reconnects += 1
            try:
                await Connection.wait(
                    self._connection.backoff.delay(attempt, self._connection.rng), self._stop
                )
            except StopRequested:
                return

    async def _stream_once(self, session_id: str, request: ev.EventSubscriptionRequest) -> int:
        """Read one stream until it fails; return how many events it delivered."""
        call = EventsStub(self._connection.channel).GetEvents(request)
        tracker = self.trackers[session_id]
        count = 0
        try:
            async for message in call:
                if not count:
                    self._set_state(session_id, CONNECTED)
                    self.lag.subscribed(session_id)
                count += 1
                self._receive(message, tracker)
        except grpc.aio.AioRpcError as error:
            await self._connection.report_failure("GetEvents", error)
            log.debug("stream of session %s ended: %s", session_id, error.code().name)
        finally:
            call.cancel()
            self.lag.forget(session_id)
        return count

    def _receive(self, message: ev.EventSubscriptionResponse, tracker: TaskTracker) -> None:
        now = self._clock()
        kind = message.WhichOneof("update")
        if kind is None:
            return
        self.last_event_at = now
        self.received[kind] += 1
        session_id, observed = message.session_id, int(now * 1_000_000)
        # Most task events repeat what the tracker knows (replays, duplicates): decide on the
        # fields it needs before building the record, and build status updates directly.
        event: SessionEvent | None
        if kind == "task_status_update":
            update = message.task_status_update
            task_id, status = update.task_id, convert.task_status(update.status)
            if not self._progress(session_id, task_id, status, int(now), tracker, False):
                return
            event = SessionEvent(observed, session_id, EventKind.TASK_STATUS_UPDATE, task_id,
                                 "", status)
        elif kind == "new_task":
            new = message.new_task
            status = convert.task_status(new.status)
            if not self._progress(session_id, new.task_id, status, int(now), tracker, True):
                return
            event = convert.new_task_event(new, status, session_id, observed)
        else:
            event = convert.session_event(message, observed)
            if event is None:
                return
        self._buffer.append(event)
        if len(self._buffer) >= self._batch_size:
            self.flush()

    def _progress(self, session_id: str, task_id: str, status: str, now_s: int,
                  tracker: TaskTracker, new: bool) -> bool:
        """Note a delivered end for the lag, and tell whether the report is real progress."""
        if status in _TERMINAL:
            self.lag.delivered(session_id, task_id)
        return tracker.report(task_id, status, now_s, new).advanced

    # -- status for self-metrics --------------------------------------------------------------

    def _set_state(self, session_id: str, state: str) -> None:
        self.states[session_id] = state
        self._state_changed.set()

    async def wait_for_state(self, session_id: str, state: str) -> None:
        """Wait until a session's stream is in `state`."""
        while self.states.get(session_id) != state:
            self._state_changed.clear()
            await self._state_changed.wait()

    def stream_states(self) -> Counter[str]:
        """Streams by state, every state present (0 when none is in it)."""
        states = Counter(dict.fromkeys((CONNECTING, CONNECTED, DEGRADED), 0))
        states.update(self.states.values())
        return states

    def lag_by_session(self) -> dict[str, float]:
        """Lag of every followed session's stream, in seconds."""
        return {session_id: self.lag.lag_seconds(session_id) for session_id in self._wanted}


class StreamLagSink:
    """A pipeline sink that shows the streams the task facts, so their lag can be measured."""

    name = "stream-lag"
    needs = Needs()

    def __init__(self, streams: EventStreams) -> None:
        self._streams = streams

    async def start(self) -> None:
        """Nothing to prepare."""

    def consume(self, batch: Batch) -> None:
        """Pass task facts on to the streams."""
        if batch.facts:
            self._streams.note_facts(batch.facts)

    async def flush(self) -> None:
        """Nothing buffered."""

    async def stop(self) -> None:
        """Nothing to release."""

    def self_metrics(self) -> Iterable[Family]:
        """None: stream lag is among the exporter's own metrics."""
        return ()

    def caches(self) -> dict[str, int]:
        """None of its own (the lag monitor's are the exporter's)."""
        return {}
