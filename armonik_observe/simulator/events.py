"""Session event streams with the real server's delivery semantics.

What a subscriber sees, as on a real control plane:
- a snapshot replay first: every task and result of the session as NEW_TASK / NEW_RESULT with its
  status at the time it is sent;
- then live updates, with no timestamp. A status update carries the task's status when the update
  is sent, not when it happened (the real server looks the document up after the change), so
  statuses repeat and can skip ahead;
- task and result updates come from two sources merged in no fixed order;
- changes made while the snapshot is sent arrive again afterwards (at-least-once);
- a stream never ends on its own.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from armonik.protogen.common import events_common_pb2 as ev

from armonik_observe.simulator.records import SimResult, SimTask

Response = ev.EventSubscriptionResponse

NEW_TASK = ev.EVENTS_ENUM_NEW_TASK
TASK_STATUS_UPDATE = ev.EVENTS_ENUM_TASK_STATUS_UPDATE
NEW_RESULT = ev.EVENTS_ENUM_NEW_RESULT
RESULT_STATUS_UPDATE = ev.EVENTS_ENUM_RESULT_STATUS_UPDATE
RESULT_OWNER_UPDATE = ev.EVENTS_ENUM_RESULT_OWNER_UPDATE
ALL_KINDS = frozenset(
    {NEW_TASK, TASK_STATUS_UPDATE, NEW_RESULT, RESULT_STATUS_UPDATE, RESULT_OWNER_UPDATE}
)
KIND_NAMES = {
    NEW_TASK: "new_task",
    TASK_STATUS_UPDATE: "task_status_update",
    NEW_RESULT: "new_result",
    RESULT_STATUS_UPDATE: "result_status_update",
    RESULT_OWNER_UPDATE: "result_owner_update",
}

TaskPredicate = Callable[[SimTask], bool]
ResultPredicate = Callable[[SimResult], bool]


@dataclass(frozen=True, slots=True)
class EmittedEvent:
    """One event as it was sent on one stream: the ground truth of what a client received."""

    stream_id: int
    session_id: str
    kind: int
    entity_id: str
    status: int


@dataclass(slots=True)
class DeliveryPolicy:
    """Knobs of delivery, changed by fault injection."""

    duplicate_rate: float = 0.0
    reorder_rate: float = 0.0


@dataclass(eq=False)
class Subscription:
    """One GetEvents stream: a snapshot to replay, then two live queues merged at random."""

    stream_id: int
    session_id: str
    kinds: frozenset[int]
    task_filter: TaskPredicate | None
    result_filter: ResultPredicate | None
    rng: random.Random
    snapshot: deque[tuple[int, Any]] = field(default_factory=deque)
    task_queue: deque[tuple[int, Any]] = field(default_factory=deque)
    result_queue: deque[tuple[int, Any]] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    def wants_task(self, kind: int, task: SimTask) -> bool:
        """Tell whether a task event passes this stream's kinds and task filter."""
        return kind in self.kinds and (self.task_filter is None or self.task_filter(task))

    def wants_result(self, kind: int, result: SimResult) -> bool:
        """Tell whether a result event passes this stream's kinds and result filter."""
        return kind in self.kinds and (self.result_filter is None or self.result_filter(result))

    def pending(self) -> int:
        """Count events queued and not yet sent."""
        return len(self.snapshot) + len(self.task_queue) + len(self.result_queue)

    def next_item(self) -> tuple[int, Any] | None:
        """Pop the next event to send: snapshot first, then either live queue."""
        if self.snapshot:
            return self.snapshot.popleft()
        tasks, results = self.task_queue, self.result_queue
        if tasks and results:
            return tasks.popleft() if self.rng.random() < 0.5 else results.popleft()
        if tasks:
            return tasks.popleft()
        return results.popleft() if results else None


def _owner_update(item: tuple[str, str, str]) -> Any:
    result_id, previous, current = item
    return Response.ResultOwnerUpdate(
        result_id=result_id, previous_owner_id=previous, current_owner_id=current
    )


class EventBus:
    """Fans task and result changes out to the streams of their session."""

    def __init__(self, *, seed: int, record: bool) -> None:
        self._streams: dict[str, list[Subscription]] = {}
        self._ids = itertools.count(1)
        self._seed = seed
        self.policy = DeliveryPolicy()
        self.record = record
        self.emitted: list[EmittedEvent] = []
        # Callbacks told of every result status change, whatever the session (WatchResults).
        self.result_watchers: list[Callable[[SimResult], None]] = []

    def subscribe(
        self,
        session_id: str,
        kinds: Iterable[int],
        task_filter: TaskPredicate | None,
        result_filter: ResultPredicate | None,
        snapshot_tasks: Iterable[SimTask],
        snapshot_results: Iterable[SimResult],
    ) -> Subscription:
        """Register a stream and queue its snapshot; live changes are queued from now on."""
        stream_id = next(self._ids)
        sub = Subscription(
            stream_id=stream_id,
            session_id=session_id,
            kinds=frozenset(kinds) or ALL_KINDS,
            task_filter=task_filter,
            result_filter=result_filter,
            rng=random.Random(self._seed * 1_000_003 + stream_id),
        )
        sub.snapshot.extend(
            (NEW_TASK, (t, None)) for t in snapshot_tasks if sub.wants_task(NEW_TASK, t)
        )
        sub.snapshot.extend(
            (NEW_RESULT, r) for r in snapshot_results if sub.wants_result(NEW_RESULT, r)
        )
        self._streams.setdefault(session_id, []).append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a stream (idempotent)."""
        sub.closed = True
        sub.wake.set()
        streams = self._streams.get(sub.session_id, [])
        if sub in streams:
            streams.remove(sub)
            if not streams:
                del self._streams[sub.session_id]

    def close_all(self) -> list[Subscription]:
        """Close every stream, as a server restart does; return the streams that were open."""
        subs = [sub for streams in self._streams.values() for sub in streams]
        for sub in subs:
            self.unsubscribe(sub)
        return subs

    def stream_count(self) -> int:
        """Count open streams."""
        return sum(len(streams) for streams in self._streams.values())

    def publish_task(self, kind: int, task: SimTask) -> None:
        """Queue a NEW_TASK or TASK_STATUS_UPDATE for the task's session streams."""
        for sub in self._streams.get(task.session_id, ()):
            if sub.wants_task(kind, task):
                # NEW_TASK keeps the status it was created with; updates are read when sent.
                payload = (task, task.status) if kind == NEW_TASK else task
                sub.task_queue.append((kind, payload))
                sub.wake.set()

    def publish_result(self, kind: int, result: SimResult) -> None:
        """Queue a NEW_RESULT or RESULT_STATUS_UPDATE for the result's session streams."""
        for watcher in self.result_watchers:
            watcher(result)
        for sub in self._streams.get(result.session_id, ()):
            if sub.wants_result(kind, result):
                sub.result_queue.append((kind, result))
                sub.wake.set()

    def publish_owner_update(self, result: SimResult, previous_owner: str) -> None:
        """Queue a RESULT_OWNER_UPDATE: a task handed one of its outputs to another task."""
        item = (result.result_id, previous_owner, result.owner_task_id)
        for sub in self._streams.get(result.session_id, ()):
            if sub.wants_result(RESULT_OWNER_UPDATE, result):
                sub.result_queue.append((RESULT_OWNER_UPDATE, item))
                sub.wake.set()

    async def messages(self, sub: Subscription) -> AsyncIterator[Any]:
        """Yield the stream's messages for as long as it is subscribed; it never ends by itself."""
        while not sub.closed:
            item = sub.next_item()
            if item is None:
                sub.wake.clear()
                await sub.wake.wait()
                continue
            message = self._build(sub, *item)
            yield message
            if self.policy.duplicate_rate and sub.rng.random() < self.policy.duplicate_rate:
                yield self._build(sub, *item)
            if self.policy.reorder_rate and sub.rng.random() < self.policy.reorder_rate:
                self._swap_next(sub)

    def _swap_next(self, sub: Subscription) -> None:
        queue = sub.task_queue if len(sub.task_queue) >= 2 else sub.result_queue
        if len(queue) >= 2:
            queue[0], queue[1] = queue[1], queue[0]

    def _build(self, sub: Subscription, kind: int, payload: Any) -> Any:
        session_id = sub.session_id
        if kind == TASK_STATUS_UPDATE:
            status = int(payload.status)
            entity = payload.task_id
            message = Response(
                session_id=session_id,
                task_status_update=Response.TaskStatusUpdate(task_id=entity, status=status),
            )
        elif kind == NEW_TASK:
            message, entity, status = self._new_task(session_id, *payload)
        elif kind == RESULT_STATUS_UPDATE:
            entity, status = payload.result_id, int(payload.status)
            message = Response(
                session_id=session_id,
                result_status_update=Response.ResultStatusUpdate(result_id=entity, status=status),
            )
        elif kind == NEW_RESULT:
            entity, status = payload.result_id, int(payload.status)
            message = Response(
                session_id=session_id,
                new_result=Response.NewResult(
                    result_id=entity, owner_id=payload.owner_task_id, status=status
                ),
            )
        else:
            entity, status = payload[0], 0
            message = Response(session_id=session_id, result_owner_update=_owner_update(payload))
        if self.record:
            self.emitted.append(EmittedEvent(sub.stream_id, session_id, kind, entity, status))
        return message

    @staticmethod
    def _new_task(session_id: str, task: SimTask, status: int | None) -> tuple[Any, str, int]:
        # A snapshot replay carries the task's current status; a live NEW_TASK the one it had.
        status = int(task.status if status is None else status)
        new_task = Response.NewTask(
            task_id=task.task_id,
            payload_id=task.payload_id,
            origin_task_id=task.initial_task_id,
            status=status,
            expected_output_keys=task.expected_output_ids,
            data_dependencies=task.data_dependencies,
            retry_of_ids=task.retry_of_ids,
            parent_task_ids=task.parent_task_ids,
        )
        return Response(session_id=session_id, new_task=new_task), task.task_id, status
