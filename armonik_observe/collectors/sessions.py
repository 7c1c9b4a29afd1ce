"""Session discovery that costs the active sessions and the changes, never the whole history.

Each pass makes two kinds of ListSessions calls, whatever the history (a busy control plane keeps
tens of thousands of sessions for days):

- the active sessions (RUNNING or PAUSED, a server-side status filter), newest first: the
  newest `max_followed` of them are followed with an event stream;
- the change feed: sessions created, cancelled, closed, purged or deleted since a watermark on
  those dates, minus an overlap window for late writes, de-duplicated. It starts at the
  exporter's start point (collectors/origin.py), so sessions that end before the control plane
  first answers are seen too.

Sinks get a session only when it changed (new, or a new status or date). `armonik_sessions`
comes from a SessionCensus: active sessions as listed, ended ones recounted only at a resync
(at start, then every `resync_interval`: one one-row ListSessions per ended status, whose
`total` is the count) and moved along by the change feed between resyncs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from armonik.protogen.client.sessions_service_pb2_grpc import SessionsStub

from armonik_observe.collectors import convert, requests
from armonik_observe.collectors.poller import Poller, Publish
from armonik_observe.collectors.retry import Connection
from armonik_observe.collectors.session_census import (
    ACTIVE,
    ENDED,
    SessionCensus,
    newest_date,
    status_numbers,
)
from armonik_observe.model import SessionInfo
from armonik_observe.pipeline import Batch

PAGE_SIZE = 1000
Changed = Callable[[list[SessionInfo]], None]


class SessionDiscovery(Poller):
    """Follows up to `max_followed` active sessions, newest first, and tells what changed."""

    name = "sessions"
    rpcs = ("ListSessions",)

    def __init__(
        self,
        *,
        connection: Connection,
        publish: Publish,
        interval: float,
        max_followed: int,
        on_followed: Callable[[list[SessionInfo]], None],
        overlap_us: int = 30_000_000,
        resync_interval: float = 3600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(connection=connection, publish=publish, interval=interval,
                         monotonic=monotonic)
        self.max_followed = max_followed
        self._on_followed = on_followed
        self.on_changed: list[Changed] = []
        self.overlap_us = overlap_us
        self.resync_interval = resync_interval
        self.followed: dict[str, SessionInfo] = {}
        self.active: dict[str, SessionInfo] = {}
        self.unfollowed = 0
        self.census = SessionCensus()
        self.watermark_us: int | None = None  # the newest life-cycle date the feed has read
        self._floor_us: int | None = None
        self._published: dict[str, SessionInfo] = {}  # what sinks last got, while re-readable
        self._resync_due = 0.0

    def place(self, floor_us: int) -> None:
        """Where the change feed starts (the task facts' start point); before the first poll."""
        self._floor_us = floor_us

    def remembered(self) -> int:
        """Sessions remembered between passes: as last published, and counted since resync."""
        return len(self._published) + len(self.census)

    def followed_ids(self) -> list[str]:
        """Ids of the followed sessions."""
        return list(self.followed)

    async def poll_once(self) -> None:
        """Resync when due, list the active sessions and the changes; publish what changed."""
        if self._floor_us is None:
            raise RuntimeError("session discovery has no start point: call place() first")
        resync = self._monotonic() >= self._resync_due
        totals = await self._ended_totals() if resync else None
        active = await self._sessions(requests.list_sessions_in, status_numbers(ACTIVE))
        changes = await self._changes()
        if totals is not None:
            self.census.rebase(totals, self.watermark_us or self._floor_us)
            self._resync_due = self._monotonic() + self.resync_interval
        else:
            for session in changes:
                self.census.note(session)
        self._follow(active)
        self._publish_changed([*active, *changes])

    async def _ended_totals(self) -> dict[str, int]:
        totals = {}
        for status, number in zip(ENDED, status_numbers(ENDED), strict=True):
            reply = await self._call(requests.count_sessions_in(number))
            totals[status] = reply.total
        return totals

    async def _changes(self) -> list[SessionInfo]:
        """Sessions with a life-cycle date since the watermark minus the overlap."""
        floor = self._floor_us or 0
        watermark = self.watermark_us
        since = floor if watermark is None else max(floor, watermark - self.overlap_us)
        changes = await self._sessions(requests.list_sessions_changed_since, since)
        if changes:
            self.watermark_us = max(watermark or 0, *map(newest_date, changes))
        return changes

    async def _sessions(self, request: Callable[..., Any], condition: Any) -> list[SessionInfo]:
        found: list[SessionInfo] = []
        page = 0
        while True:
            reply = await self._call(request(condition, page, PAGE_SIZE))
            found += [convert.session_info(s) for s in reply.sessions]
            page += 1
            if len(found) >= reply.total or not reply.sessions:
                return found

    async def _call(self, request: Any) -> Any:
        return await self.connection.unary(SessionsStub, "ListSessions", request)

    def _follow(self, active: list[SessionInfo]) -> None:
        chosen = active[: self.max_followed]  # newest first, as listed
        self.unfollowed = len(active) - len(chosen)
        self.active = {s.session_id: s for s in active}
        self.followed = {s.session_id: s for s in chosen}
        self._on_followed(chosen)

    def _publish_changed(self, sessions: list[SessionInfo]) -> None:
        published = self._published
        changed = [s for s in {s.session_id: s for s in sessions}.values()
                   if published.get(s.session_id) != s]
        published.update((s.session_id, s) for s in changed)
        # Keep what can be read again: active sessions and changes within the overlap.
        horizon = (self.watermark_us or 0) - self.overlap_us
        self._published = {k: s for k, s in published.items()
                           if k in self.active or newest_date(s) >= horizon}
        self.publish(Batch(sessions=changed, session_totals=self.census.totals(
            self.active.values())))
        if changed:
            for callback in self.on_changed:
                callback(changed)
