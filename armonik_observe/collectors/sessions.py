"""Session discovery: ListSessions every interval; follow the newest running or paused ones."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from armonik.protogen.client.sessions_service_pb2_grpc import SessionsStub

from armonik_observe.collectors import convert, requests
from armonik_observe.collectors.poller import Poller, Publish
from armonik_observe.collectors.retry import Connection
from armonik_observe.model import SessionInfo
from armonik_observe.pipeline import Batch

PAGE_SIZE = 1000
ACTIVE = frozenset({"RUNNING", "PAUSED"})


class SessionDiscovery(Poller):
    """Lists every session; follows up to `max_followed` active ones, newest first."""

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
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(connection=connection, publish=publish, interval=interval,
                         monotonic=monotonic)
        self.max_followed = max_followed
        self._on_followed = on_followed
        self.followed: dict[str, SessionInfo] = {}
        self.sessions: dict[str, SessionInfo] = {}  # every session of the last pass
        self.unfollowed = 0

    def followed_ids(self) -> list[str]:
        """Ids of the followed sessions."""
        return list(self.followed)

    async def poll_once(self) -> None:
        """List sessions, publish them, and update the followed set."""
        sessions = await self._all_sessions()
        self.sessions = {s.session_id: s for s in sessions}
        self.publish(Batch(sessions=sessions))
        active = [s for s in sessions if s.status in ACTIVE]  # newest first, as listed
        chosen = active[: self.max_followed]
        self.unfollowed = len(active) - len(chosen)
        self.followed = {s.session_id: s for s in chosen}
        self._on_followed(chosen)

    async def _all_sessions(self) -> list[SessionInfo]:
        found: list[SessionInfo] = []
        page = 0
        while True:
            reply = await self._page(page)
            found += [convert.session_info(s) for s in reply.sessions]
            page += 1
            if len(found) >= reply.total or not reply.sessions:
                return found

    async def _page(self, page: int) -> Any:
        return await self.connection.unary(
            SessionsStub, "ListSessions", requests.list_sessions(page, PAGE_SIZE)
        )
