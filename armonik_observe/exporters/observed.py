"""The latest polled view of the control plane, kept from batches for scrapes to read."""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from armonik_observe.model import (
    TERMINAL_TASK_STATUSES,
    HealthSample,
    PartitionInfo,
    SessionInfo,
    StatusCounts,
    Versions,
)
from armonik_observe.pipeline import Batch

log = logging.getLogger(__name__)
_TERMINAL_NAMES = frozenset(status.name for status in TERMINAL_TASK_STATUSES)
# Completion rate for the ETA is measured over this much recent history.
ETA_WINDOW_US = 300_000_000
ENDED_KEPT = 10_000
_ACTIVE_SESSION = frozenset({"RUNNING", "PAUSED"})


@dataclass(slots=True)
class SessionProgress:
    """Recent count samples of one session: (observed_at, ended tasks, remaining tasks)."""

    samples: deque[tuple[int, int, int]] = field(default_factory=lambda: deque(maxlen=64))

    def add(self, counts: StatusCounts) -> None:
        """Record one count sample."""
        ended = sum(n for status, n in counts.counts if status in _TERMINAL_NAMES)
        remaining = sum(n for status, n in counts.counts if status not in _TERMINAL_NAMES)
        self.samples.append((counts.observed_at, ended, remaining))
        while self.samples and self.samples[0][0] < counts.observed_at - ETA_WINDOW_US:
            self.samples.popleft()

    def eta_seconds(self) -> float:
        """Remaining tasks over the recent completion rate; NaN when the rate is unknown."""
        if not self.samples:
            return math.nan
        last_at, last_ended, remaining = self.samples[-1]
        if remaining == 0:
            return 0.0
        first_at, first_ended, _ = self.samples[0]
        if last_at <= first_at or last_ended <= first_ended:
            return math.nan
        rate = (last_ended - first_ended) / ((last_at - first_at) / 1_000_000)
        return remaining / rate


@dataclass
class ObservedState:
    """What the last polls said; replaced wholesale by each new answer."""

    # Sessions the events may name: active ones, and the latest ended ones (their last events
    # arrive after they end), at most ENDED_KEPT of those.
    sessions: dict[str, SessionInfo] = field(default_factory=dict)
    session_totals: dict[str, int] = field(default_factory=dict)
    partitions: dict[str, PartitionInfo] = field(default_factory=dict)
    partition_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    session_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    progress: dict[str, SessionProgress] = field(default_factory=dict)
    health: dict[str, HealthSample] = field(default_factory=dict)
    versions: Versions | None = None
    deadline_option: str = "deadline"  # the task option holding a session's deadline
    deadlines: dict[str, float] = field(default_factory=dict)  # session -> epoch seconds

    def update(self, batch: Batch) -> None:
        """Fold a batch's polled records in."""
        if batch.sessions:
            self._update_sessions(batch.sessions)
        if batch.session_totals is not None:
            self.session_totals = batch.session_totals
        if batch.partitions:
            self.partitions = {p.partition_id: p for p in batch.partitions}
        if batch.counts:
            self._update_counts(batch.counts)
        for sample in batch.health:
            self.health[sample.service] = sample
        if batch.versions is not None:
            self.versions = batch.versions

    def _update_sessions(self, changed: list[SessionInfo]) -> None:
        sessions = self.sessions
        deadlines = self.deadlines
        for session in changed:
            sessions.pop(session.session_id, None)  # re-inserted last: ended ones leave in order
            sessions[session.session_id] = session
            deadline = session_deadline(session, self.deadline_option)
            if deadline is None:
                deadlines.pop(session.session_id, None)
            else:
                deadlines[session.session_id] = deadline
        ended = [k for k, s in sessions.items() if s.status not in _ACTIVE_SESSION]
        for session_id in ended[: max(0, len(ended) - ENDED_KEPT)]:
            del sessions[session_id]
            deadlines.pop(session_id, None)

    def _update_counts(self, counts: list[StatusCounts]) -> None:
        partitions = {c.key: dict(c.counts) for c in counts if c.scope == "partition"}
        sessions = {c.key: dict(c.counts) for c in counts if c.scope == "session"}
        if partitions:
            self.partition_counts = partitions
        self.session_counts = sessions
        for sample in counts:
            if sample.scope == "session":
                self.progress.setdefault(sample.key, SessionProgress()).add(sample)
        for gone in set(self.progress) - set(sessions):
            del self.progress[gone]  # no longer followed: its series disappear at once

    def partition_of(self, session_id: str) -> str:
        """The default partition of a session, or "" when unknown."""
        session = self.sessions.get(session_id)
        return session.default_partition if session else ""


def session_deadline(session: SessionInfo, option: str) -> float | None:
    """A session's deadline in epoch seconds, from its task option `option`; None without one.

    A value that is not an RFC 3339 time is logged (once per change of the session) and
    ignored.
    """
    text = dict(session.options).get(option) if option else None
    if not text:
        return None
    deadline = parse_rfc3339(text)
    if deadline is None:
        log.warning("session %s: task option %s=%r is not an RFC 3339 time (e.g. "
                    "2030-01-31T18:00:00Z): no deadline exported", session.session_id, option,
                    text)
    return deadline


def parse_rfc3339(text: str) -> float | None:
    """Epoch seconds of an RFC 3339 date-time (its offset required); None if it is not one."""
    try:
        moment = datetime.fromisoformat(text.strip().upper())  # RFC 3339 allows 't' and 'z'
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None
