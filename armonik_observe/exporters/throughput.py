"""Recent throughput: task ends of the last minute by partition, for the status page.

Counted from the task facts (each ended task once, dated by the server's `ended_at`), per second
of end, so the memory is one small counter per partition and second of the window.
"""

from __future__ import annotations

from collections import Counter

from armonik_observe.fact_columns import TaskFacts

MICROS = 1_000_000


class RecentEnds:
    """Task ends per partition over a sliding window of `window_s` seconds."""

    def __init__(self, window_s: int = 60) -> None:
        self.window_s = window_s
        self._ends: dict[str, Counter[int]] = {}  # partition -> ends per second of ended_at
        self.newest_s = 0  # the latest second a task ended in, over every partition

    def add(self, facts: TaskFacts) -> None:
        """Count a page of facts (ends older than the window, at arrival, are not kept)."""
        if not facts:
            return
        seconds = (facts["ended_at"] // MICROS).tolist()
        self.newest_s = max(self.newest_s, max(seconds))
        oldest = self.newest_s - self.window_s
        for (partition, second), count in Counter(
                zip(facts["partition_id"], seconds, strict=True)).items():
            if second > oldest:
                counter = self._ends.setdefault(partition, Counter())
                counter[second] += count
        for counter in self._ends.values():
            for second in [s for s in counter if s <= oldest]:
                del counter[second]

    def per_second(self, now_s: float, settle_s: float) -> dict[str, float]:
        """Ends per second of each partition over the window ending now, or at the newest end
        when it is less than `settle_s` old (facts arrive that late: the seconds after it are
        still to come, not idle)."""
        end = self.newest_s if now_s - self.newest_s <= settle_s else int(now_s)
        start = end - self.window_s
        return {partition: sum(n for s, n in counter.items() if start < s <= end) / self.window_s
                for partition, counter in sorted(self._ends.items())}
