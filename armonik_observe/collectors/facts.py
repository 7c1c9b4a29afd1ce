"""Task facts: authoritative timestamps and durations from ListTasks pages, never one RPC per task.

One watermark on `ended_at` covers the whole control plane, so a task that ends anywhere is read
exactly once: in a followed session, in a session that started and ended between two discovery
passes, or while an event stream (or the exporter) was down. Each pass re-reads an overlap window
below the watermark, since equal timestamps and late writes exist, and drops the ids it has seen.
Pages are keyed by `ended_at` (each page starts at the last end read), so tasks ending while we
page never shift a page.

Counting starts at a `FactsOrigin` placed when the exporter starts (collectors/origin.py), never
at the first call that succeeds: ends that happen while the control plane cannot be reached are
read once it answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from armonik.protogen.client.tasks_service_pb2_grpc import TasksStub

from armonik_observe.collectors import convert, requests
from armonik_observe.collectors.origin import FactsOrigin
from armonik_observe.collectors.poller import Poller, Publish
from armonik_observe.collectors.retry import Connection
from armonik_observe.fact_columns import TaskFacts
from armonik_observe.pipeline import Batch

PAGE_SIZE = 1000


class TaskFactsPoller(Poller):
    """Reads every task that ended since the watermark, in pages of `page_size`."""

    name = "facts"

    def __init__(
        self,
        *,
        connection: Connection,
        publish: Publish,
        interval: float,
        overlap_us: int = 30_000_000,
        page_size: int = PAGE_SIZE,
        detailed: bool = False,
        origin: FactsOrigin | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(connection=connection, publish=publish, interval=interval,
                         monotonic=monotonic)
        self.overlap_us = overlap_us
        self.page_size = page_size
        self.detailed = detailed
        self.origin: FactsOrigin | None = None
        self.watermark_us: int | None = None  # the newest end read
        self._seen: dict[str, int] = {}  # task id -> ended_at, within the overlap window
        self._kept = 0  # ids kept by the last pruning
        self.pages = 0
        self.rpcs = ("ListTasksDetailed" if detailed else "ListTasks",)
        if origin is not None:
            self.place(origin)

    def place(self, origin: FactsOrigin) -> None:
        """Set where counting starts; before the first poll."""
        self.origin = origin
        self.watermark_us = origin.watermark_us
        self._seen = dict(origin.counted)
        self._kept = len(self._seen)

    def start_point(self) -> int:
        """The server time from which ended tasks count."""
        return self._origin().floor_us

    async def poll_once(self) -> None:
        """Read and publish every task ended since the watermark minus the overlap."""
        floor = self._origin().floor_us
        # Nothing that ended before the floor counts, not even in overlap re-reads.
        watermark = self.watermark_us
        cursor = floor if watermark is None else max(watermark - self.overlap_us, floor)
        page = 0
        while True:
            tasks = await self._page(cursor, page)
            seen = self._seen
            # Rows re-read in the overlap are dropped before the costly conversion.
            self._publish_new(convert.task_facts([t for t in tasks if t.id not in seen],
                                                 self.detailed))
            if len(tasks) < self.page_size:
                break
            last = convert.micros(tasks[-1], "ended_at") or cursor
            cursor, page = (last, 0) if last > cursor else (cursor, page + 1)
            if len(seen) > 2 * self._kept + self.page_size:  # a catch-up: prune as it pages
                self._forget_old()
        self._forget_old()

    def seen_ids(self) -> int:
        """Ids remembered to drop re-reads in the overlap window (its ends, at most)."""
        return len(self._seen)

    def _origin(self) -> FactsOrigin:
        if self.origin is None:
            raise RuntimeError("the task facts poller has no origin: call place() first")
        return self.origin

    async def _page(self, cursor: int, page: int) -> Any:
        request = requests.list_tasks_ended_since(cursor, page, self.page_size)
        self.pages += 1
        reply = await self.connection.unary(TasksStub, self.rpcs[0], request)
        return reply.tasks

    def _publish_new(self, facts: TaskFacts) -> None:
        if not facts:
            return
        ends = facts["ended_at"]
        if not ends.all():  # the filter asks for ended tasks; a server may still send others
            facts = facts.take(ends != 0)
            ends = facts["ended_at"]
        if facts:
            self._seen.update(zip(facts["task_id"], ends.tolist(), strict=True))
            self.watermark_us = max(self.watermark_us or 0, int(ends.max()))
            self.publish(Batch(facts=facts))

    def _forget_old(self) -> None:
        if self.watermark_us is None:
            return
        horizon = self.watermark_us - self.overlap_us
        self._seen = {task: end for task, end in self._seen.items() if end >= horizon}
        self._kept = len(self._seen)
