"""Live mode: a control plane's tasks, paged through ListTasksDetailed, as a frame with exactly
the archive's `tasks` schema (the collector's conversion, then the archive's), so every analysis
runs on it unchanged.

Pages are sorted by creation time and keyed by it, as the task facts are by end time: each page
starts at the last creation read, so tasks created while we page never shift a page, and rows
read twice are folded by the `tasks` view's own rule. The live mode reads named sessions, or
what was created since a time: never the whole history of a control plane.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import polars as pl
import pyarrow as pa
from armonik.protogen.client.sessions_service_pb2_grpc import SessionsStub
from armonik.protogen.client.tasks_service_pb2_grpc import TasksStub
from armonik.protogen.common import sessions_common_pb2

from armonik_observe.analytics.frames import (
    COLUMNS,
    AnalyticsError,
    Selection,
    TaskFrames,
    as_utc,
    resolve_sessions,
)
from armonik_observe.archive.arrow import facts_batches
from armonik_observe.archive.schema import TASKS
from armonik_observe.collectors import convert, requests
from armonik_observe.collectors.channel import ChannelFactory, Endpoint, TlsFiles
from armonik_observe.fact_columns import TaskFacts

PAGE_SIZE = 1000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Told after each page: (tasks read so far, tasks to read as the server counted them).
Progress = Callable[[int, int], None]
Pages = list[tuple[int, TaskFacts]]  # (read at, in epoch microseconds; a page of facts)


class LiveReader:
    """Reads the selected tasks of one control plane, a page at a time: one call at a time,
    each under its deadline, no retries (a one-shot command reports a failure at once)."""

    def __init__(self, channel: grpc.aio.Channel, *, rpc_timeout: float = 60.0,
                 page_size: int = PAGE_SIZE, progress: Progress | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.channel = channel
        self.rpc_timeout = rpc_timeout
        self.page_size = page_size
        self.progress = progress
        self.clock = clock

    async def frames(self, selection: Selection, where: str) -> TaskFrames:
        """The selected tasks; AnalyticsError for a session the control plane does not know."""
        if not selection.sessions and selection.since is None:
            raise AnalyticsError("the live mode reads named sessions or tasks created --since a "
                                 "time, never a control plane's whole history")
        common = _conditions(selection)
        read: Pages = []
        known: set[str] = set()
        for session in selection.sessions or (None,):
            scope = [requests.task_session_is(session)] if session else []
            found = await self._read(scope + common, read)
            if session and (found or await self._session_exists(session)):
                known.add(session)
        raw = _frame(read)
        selected = set(raw["session_id"].unique().to_list())
        sessions = resolve_sessions(selection, known, selected, where)
        rows = raw.lazy().filter(pl.col("session_id").is_in(list(sessions)))
        return TaskFrames(rows, None, sessions, where)

    async def _read(self, conditions: list[Any], into: Pages) -> int:
        cursor: int | None = None
        page = total = done = 0
        while True:
            keyed = (conditions if cursor is None
                     else [*conditions, requests.task_created_since(cursor)])
            request = requests.list_tasks_created(keyed, page, self.page_size)
            reply = await self._call(TasksStub, "ListTasksDetailed", request)
            tasks = reply.tasks
            if tasks:
                into.append((int(self.clock() * 1_000_000), convert.task_facts(tasks, True)))
            total = total or reply.total
            done += len(tasks)
            if self.progress is not None:
                self.progress(done, max(total, done))
            if len(tasks) < self.page_size:
                return done
            last = convert.micros(tasks[-1], "created_at") or 0
            cursor, page = (last, 0) if cursor is None or last > cursor else (cursor, page + 1)

    async def _session_exists(self, session_id: str) -> bool:
        request = sessions_common_pb2.GetSessionRequest(session_id=session_id)
        try:
            await self._call(SessionsStub, "GetSession", request)
        except AnalyticsError:
            return False
        return True

    async def _call(self, stub: Any, rpc: str, request: Any) -> Any:
        try:
            return await getattr(stub(self.channel), rpc)(request, timeout=self.rpc_timeout)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise AnalyticsError(error.details() or "not found") from None
            details = " ".join((error.details() or "").split())
            raise AnalyticsError(f"{rpc} failed on the control plane: {error.code().name}: "
                                 f"{details}") from None


def _conditions(selection: Selection) -> list[Any]:
    conditions = []
    if selection.since is not None:
        conditions.append(requests.task_created_since(_micros(selection.since)))
    if selection.until is not None:
        conditions.append(requests.task_created_before(_micros(selection.until)))
    if selection.partition is not None:
        conditions.append(requests.task_partition_is(selection.partition))
    if selection.application is not None:
        conditions.append(requests.task_application_is(selection.application))
    return conditions


def _micros(moment: datetime) -> int:
    """Epoch microseconds of a time (naive ones are UTC), exactly."""
    return (as_utc(moment) - EPOCH) // timedelta(microseconds=1)


def _frame(pages: Pages) -> pl.DataFrame:
    """The pages as rows of the archive's `tasks` table (the archive's own Arrow conversion)."""
    table = pa.Table.from_batches(list(facts_batches(pages)), schema=TASKS.schema)
    raw = pl.from_arrow(table)
    assert isinstance(raw, pl.DataFrame)
    return raw.select(COLUMNS)


async def read_live(endpoint: Endpoint, selection: Selection, *, tls: TlsFiles | None = None,
                    rpc_timeout: float = 60.0, page_size: int = PAGE_SIZE,
                    progress: Progress | None = None) -> TaskFrames:
    """The selected tasks of the control plane at `endpoint` (ListTasksDetailed pages)."""
    channel = ChannelFactory(endpoint, tls)()
    try:
        reader = LiveReader(channel, rpc_timeout=rpc_timeout, page_size=page_size,
                            progress=progress)
        return await reader.frames(selection, f"the control plane at {endpoint.url}")
    finally:
        await channel.close()


def from_live(endpoint: Endpoint, selection: Selection, **options: Any) -> TaskFrames:
    """`read_live` for synchronous callers (the command line)."""
    return asyncio.run(read_live(endpoint, selection, **options))
