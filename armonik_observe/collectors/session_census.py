"""Sessions per status without listing the control plane's history on every pass.

Active sessions (RUNNING, PAUSED) are listed with a server-side status filter every pass and
counted as listed. Sessions that have ended (CANCELLED, CLOSED, PURGED, DELETED) are counted at
a resync, one `total` per status (a query over all history on the server, so it is rare), and
kept current between resyncs from the change feed: every session the feed shows moves from the
status it had (the one last counted, else the one its dates give at the resync's cutoff) to the
one it has now.

Exact while no session changes during a resync's few calls; a session that changes in that
window is off by one in its statuses until the next resync.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from armonik_observe.model import SessionInfo, SessionStatus

ACTIVE = ("RUNNING", "PAUSED")
ENDED = ("CANCELLED", "CLOSED", "PURGED", "DELETED")
STATUSES = (*ACTIVE, *ENDED)


def dated_statuses(session: SessionInfo) -> list[tuple[int, str]]:
    """The ended statuses a session went through, with their dates, oldest first."""
    dated = [(session.cancelled_at, "CANCELLED"), (session.closed_at, "CLOSED"),
             (session.purged_at, "PURGED"), (session.deleted_at, "DELETED")]
    return sorted((date, status) for date, status in dated if date is not None)


def ended_status_at(session: SessionInfo, at_us: int) -> str | None:
    """The ended status a session was in just before `at_us` (None: not ended by then)."""
    before = [status for date, status in dated_statuses(session) if date < at_us]
    return before[-1] if before else None


def newest_date(session: SessionInfo) -> int:
    """The latest of a session's life-cycle dates (0 when it has none)."""
    dates = [session.created_at or 0, *(date for date, _ in dated_statuses(session))]
    return max(dates)


class SessionCensus:
    """Ended sessions per status: a resync's totals, moved along by the change feed."""

    def __init__(self) -> None:
        self._ended: Counter[str] = Counter()
        self._cutoff_us = 0
        self._counted: dict[str, str | None] = {}  # session -> ended status counted since resync
        self.rebased = False

    def rebase(self, totals: dict[str, int], cutoff_us: int) -> None:
        """Start again from per-status totals, which hold every change before `cutoff_us`."""
        self._ended = Counter({status: totals.get(status, 0) for status in ENDED})
        self._cutoff_us = cutoff_us
        self._counted = {}
        self.rebased = True

    def note(self, session: SessionInfo) -> None:
        """A session the change feed shows: move it to the status it has now."""
        now = session.status if session.status in ENDED else None
        session_id = session.session_id
        if session_id in self._counted:
            before = self._counted[session_id]
        else:
            before = ended_status_at(session, self._cutoff_us)
        if before == now:
            return
        if before is not None:
            self._ended[before] -= 1
        if now is not None:
            self._ended[now] += 1
        self._counted[session_id] = now

    def totals(self, active: Iterable[SessionInfo]) -> dict[str, int]:
        """Sessions per status: the active ones as listed, the ended ones as kept."""
        counts = Counter(s.status for s in active if s.status in ACTIVE)
        return {status: counts[status] if status in ACTIVE else max(0, self._ended[status])
                for status in STATUSES}

    def __len__(self) -> int:
        """Sessions remembered since the last resync."""
        return len(self._counted)


def status_numbers(names: Iterable[str]) -> tuple[int, ...]:
    """Wire numbers of session statuses."""
    return tuple(int(SessionStatus[name]) for name in names)
