"""How far behind an event stream is, measured against authoritative task facts.

Events carry no timestamp, so lag is read in the server's own time: for each followed session,
the task facts show tasks that have ended (with their server `ended_at`); those whose end the
stream has not delivered yet are pending. Lag is the newest end the facts show minus the oldest
pending end: zero for a stream that keeps up, growing for one that falls behind.

Only ends a stream can still deliver are pending. Until a connection's first message arrives,
nothing is; from then on, ends at or before the newest end the facts had shown at that moment
never are: they came before the snapshot the server replays on subscription, which reports them
(replayed ends count as delivered).

Nor are ends older than the trackers remember (RECENT_END_SECONDS of the exporter's clock, less
a slack for clock skew): when the facts come that late, whether the stream delivered them can no
longer be told, and judging them would make a stream that kept up look behind.
"""

from __future__ import annotations

from collections.abc import Callable

from armonik_observe.fact_columns import TaskFacts

# Pending ends older than this (behind the newest end) are dropped: a stream that was cut
# never delivers the ends it missed, and the facts already counted them.
FORGET_AFTER_US = 600_000_000

# Pending ends kept per session, at most: a stream that many ends behind is degraded long before
# (its lag is the span from the oldest pending end, which stays).
MAX_PENDING = 100_000

Delivered = Callable[[str, str], bool]  # (session_id, task_id) -> the stream delivered its end


class LagMonitor:
    """Pending task ends per listening session, in server time."""

    def __init__(self) -> None:
        self._floor: dict[str, int] = {}  # listening session -> newest end before its snapshot
        self._pending: dict[str, dict[str, int]] = {}
        self._newest: dict[str, int] = {}
        self.facts_newest_us = 0  # the newest end the facts have shown, any session

    def subscribed(self, session_id: str) -> None:
        """A session's stream delivered the first message of a new connection (its snapshot)."""
        self.forget(session_id)
        self._floor[session_id] = self.facts_newest_us

    def note_facts(self, facts: TaskFacts, seen: Delivered, judged_since_us: int = 0) -> None:
        """Record ended tasks of listening sessions that their stream has not delivered yet;
        ends before `judged_since_us` (server time) are not judged."""
        if not facts:
            return
        ends = facts["ended_at"]
        floors = self._floor
        if floors:
            for session_id, task_id, ended_at in zip(facts["session_id"], facts["task_id"],
                                                     ends.tolist(), strict=True):
                floor = floors.get(session_id)
                if floor is None or ended_at <= floor or ended_at < judged_since_us:
                    continue
                if ended_at > self._newest.get(session_id, 0):
                    self._newest[session_id] = ended_at
                pending = self._pending.setdefault(session_id, {})
                if not seen(session_id, task_id) and len(pending) < MAX_PENDING:
                    pending[task_id] = ended_at
            for session_id in self._pending:
                self._prune(session_id)
        self.facts_newest_us = max(self.facts_newest_us, int(ends.max()))

    def delivered(self, session_id: str, task_id: str) -> None:
        """The stream delivered a task's end."""
        pending = self._pending.get(session_id)
        if pending:
            pending.pop(task_id, None)

    def lag_seconds(self, session_id: str) -> float:
        """Seconds of server time the session's stream is behind its task facts."""
        pending = self._pending.get(session_id)
        if not pending:
            return 0.0
        return max(0, self._newest[session_id] - min(pending.values())) / 1_000_000

    def pending(self) -> int:
        """Ends pending over every session (a bounded cache: MAX_PENDING a session)."""
        return sum(map(len, self._pending.values()))

    def forget(self, session_id: str) -> None:
        """Stop measuring a session: its stream is cut, degraded or no longer followed."""
        self._floor.pop(session_id, None)
        self._pending.pop(session_id, None)
        self._newest.pop(session_id, None)

    def _prune(self, session_id: str) -> None:
        horizon = self._newest.get(session_id, 0) - FORGET_AFTER_US
        pending = self._pending[session_id]
        for task_id in [t for t, end in pending.items() if end < horizon]:
            del pending[task_id]
