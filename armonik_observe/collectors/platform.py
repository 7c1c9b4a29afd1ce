"""Polls of the platform: health and versions, partitions and task counts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from armonik.protogen.client.health_checks_service_pb2_grpc import HealthChecksServiceStub
from armonik.protogen.client.partitions_service_pb2_grpc import PartitionsStub
from armonik.protogen.client.tasks_service_pb2_grpc import TasksStub
from armonik.protogen.client.versions_service_pb2_grpc import VersionsStub
from armonik.protogen.common import health_checks_common_pb2 as health
from armonik.protogen.common import versions_common_pb2 as versions

from armonik_observe.collectors import convert, requests
from armonik_observe.collectors.poller import Poller, Publish
from armonik_observe.collectors.retry import Connection
from armonik_observe.model import PartitionInfo, StatusCounts, Versions
from armonik_observe.pipeline import Batch

Clock = Callable[[], float]
PAGE_SIZE = 1000


def _now_us(clock: Clock) -> int:
    return int(clock() * 1_000_000)


class HealthPoller(Poller):
    """CheckHealth every interval; ListVersions at start and after every reconnection."""

    name = "health"
    rpcs = ("CheckHealth", "ListVersions")

    def __init__(
        self, *, connection: Connection, publish: Publish, interval: float,
        clock: Clock = time.time, monotonic: Clock = time.monotonic,
    ) -> None:
        super().__init__(connection=connection, publish=publish, interval=interval,
                         monotonic=monotonic)
        self._clock = clock
        self._versions_due = True
        connection.on_reconnect.append(self._versions_again)

    def _versions_again(self) -> None:
        self._versions_due = True

    async def poll_once(self) -> None:
        """Check health, and read versions when due."""
        response = await self.connection.unary(
            HealthChecksServiceStub, "CheckHealth", health.CheckHealthRequest()
        )
        batch = Batch(health=convert.health_samples(response, _now_us(self._clock)))
        if self._versions_due:
            reply = await self.connection.unary(
                VersionsStub, "ListVersions", versions.ListVersionsRequest()
            )
            batch.versions = Versions(core=reply.core, api=reply.api)
            self._versions_due = False
        self.publish(batch)


class CountsPoller(Poller):
    """Partitions, then CountTasksByStatus per partition and per followed session.

    Counting is an uncached aggregation on the server: it runs on this schedule only, and
    scrapes read the last answers (single flight, never one call per scrape).
    """

    name = "counts"
    rpcs = ("ListPartitions", "CountTasksByStatus")

    def __init__(
        self, *, connection: Connection, publish: Publish, interval: float,
        followed: Callable[[], list[str]], clock: Clock = time.time,
        monotonic: Clock = time.monotonic,
    ) -> None:
        super().__init__(connection=connection, publish=publish, interval=interval,
                         monotonic=monotonic)
        self._followed = followed
        self._clock = clock

    async def poll_once(self) -> None:
        """List partitions, then count tasks by status per partition and per followed session."""
        partitions = await self._partitions()
        counts = [
            await self._count("partition", p.partition_id, requests.task_partition_is)
            for p in partitions
        ]
        counts += [
            await self._count("session", s, requests.task_session_is) for s in self._followed()
        ]
        self.publish(Batch(partitions=partitions, counts=counts))

    async def _partitions(self) -> list[PartitionInfo]:
        found: list[PartitionInfo] = []
        page = 0
        while True:
            reply = await self._partition_page(page)
            found += [convert.partition_info(p) for p in reply.partitions]
            page += 1
            if len(found) >= reply.total or not reply.partitions:
                return found

    async def _partition_page(self, page: int) -> Any:
        return await self.connection.unary(
            PartitionsStub, "ListPartitions", requests.list_partitions(page, PAGE_SIZE)
        )

    async def _count(
        self, scope: str, key: str, condition: Callable[[str], object]
    ) -> StatusCounts:
        reply = await self.connection.unary(
            TasksStub, "CountTasksByStatus", requests.count_tasks(condition(key))
        )
        counts = tuple((convert.task_status(c.status), c.count) for c in reply.status)
        return StatusCounts(_now_us(self._clock), scope, key, counts)
