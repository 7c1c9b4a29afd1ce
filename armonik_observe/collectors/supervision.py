"""What a collector does with an exception nobody expected: count it, log it once, go on.

A poll or a stream that raises something other than a gRPC error (a bug, a malformed reply)
must not end its collector silently. Each collector keeps one `Mishaps`: every such exception
is counted (`armonik_observe_collector_errors_total{collector}`), the first of a run of them is
logged with its traceback, and the collector carries on after its usual backoff. A cancellation
is not an error: it always propagates (it is not an `Exception`).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class Mishaps:
    """Unexpected exceptions of one collector: counted, each run logged once with a traceback."""

    def __init__(self, collector: str) -> None:
        self.collector = collector
        self.count = 0
        self.last = ""  # the latest one, in one line
        self._running = False  # inside a run of failures: already logged

    def record(self, error: Exception) -> None:
        """Count an exception; log its traceback if it starts a run of failures."""
        self.count += 1
        self.last = f"{type(error).__name__}: {error}"
        if not self._running:
            log.error("%s failed unexpectedly (retrying with backoff)", self.collector,
                      exc_info=error)
        self._running = True

    @property
    def failing(self) -> bool:
        """True inside a run of failures: the latest attempt raised."""
        return self._running

    def recovered(self) -> None:
        """The collector worked again: the next exception is news."""
        if self._running:
            log.info("%s works again", self.collector)
        self._running = False
