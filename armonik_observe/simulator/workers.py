"""Worker pods: each partition runs at most pods x slots tasks at once, so queues build up.

A dispatched task goes through the agent's phases, each timestamped:
received (taken from the queue) -> acquired (DISPATCHED) -> fetched (inputs read) -> started
(PROCESSING) -> processed (worker returned) -> ended (final status).
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass

from armonik_observe.model import TaskStatus
from armonik_observe.simulator.plane import ControlPlane, PlaneError, ResultSpec, TaskCreation
from armonik_observe.simulator.profile import TaskProfile
from armonik_observe.simulator.records import SimPartition, SimTask

# A lost pod (`lost_rate`) holds its task in PROCESSING until the plane notices, after three
# times the task's max_duration (a minute without one); the task is then retried, or fails.
LOST_NOTICED_AFTER = 3
LOST_DEFAULT_US = 20_000_000
LOST = "worker lost: its pod stopped answering"


@dataclass(frozen=True, slots=True)
class Slot:
    """One place to run a task: a pod and its hostname."""

    pod_id: str
    hostname: str


class PartitionPool:
    """The queue and the worker slots of one partition."""

    def __init__(self, partition: SimPartition, plane: ControlPlane) -> None:
        self.partition = partition
        self._plane = plane
        self._free: list[Slot] = [
            Slot(f"{host}-agent-{slot}", host)
            for host in partition.hostnames
            for slot in range(partition.slots_per_pod)
        ]
        self.capacity = len(self._free)
        # (-priority, arrival, generation at enqueue, task): entries of a task paused, resumed or
        # cancelled since are stale and skipped, since its generation has moved on.
        self._queue: list[tuple[int, int, int, SimTask]] = []
        self._order = itertools.count()
        self._held: dict[str, Slot] = {}

    @property
    def busy(self) -> int:
        """Slots in use."""
        return len(self._held)

    @property
    def queued(self) -> int:
        """Tasks waiting for a slot (some may have been paused or cancelled meanwhile)."""
        return len(self._queue)

    def enqueue(self, task: SimTask) -> None:
        """Queue a submitted task by priority, then arrival, and dispatch if a slot is free."""
        entry = (-task.options.priority, next(self._order), task.generation, task)
        heapq.heappush(self._queue, entry)
        self._dispatch()

    def release(self, task: SimTask) -> None:
        """Free the slot a task holds, if any, and give it to the next queued task."""
        slot = self._held.pop(task.task_id, None)
        if slot is not None:
            self._free.append(slot)
            self._dispatch()

    def _dispatch(self) -> None:
        while self._free and self._queue:
            _, _, generation, task = heapq.heappop(self._queue)
            stale = generation != task.generation or task.status != TaskStatus.SUBMITTED
            if stale or task.task_id in self._held:
                continue
            slot = self._free.pop()
            self._held[task.task_id] = slot
            self._receive(task, slot)

    def _receive(self, task: SimTask, slot: Slot) -> None:
        plane, profile = self._plane, self._profile(task)
        task.received_at = plane.now()
        task.owner_pod_id, task.pod_hostname = slot.pod_id, slot.hostname
        due = task.received_at + profile.acquisition.sample_us(plane.rng)
        plane.scheduler.at(due, self._acquire, task, task.generation)

    def _profile(self, task: SimTask) -> TaskProfile:
        return self._plane.sessions[task.session_id].profile

    def _acquire(self, task: SimTask, generation: int) -> None:
        if task.generation != generation:
            return
        plane, profile = self._plane, self._profile(task)
        task.acquired_at = plane.now()
        plane.set_running_status(task, TaskStatus.DISPATCHED)
        fetched = task.acquired_at + profile.fetch.sample_us(plane.rng)
        plane.scheduler.at(fetched, self._start, task, task.generation)

    def _start(self, task: SimTask, generation: int) -> None:
        if task.generation != generation:
            return
        plane, profile, rng = self._plane, self._profile(task), self._plane.rng
        task.fetched_at = task.started_at = plane.now()
        plane.set_running_status(task, TaskStatus.PROCESSING)
        work = profile.processing.sample_us(rng)
        limit = _max_duration_us(task)
        # The pod dies: nothing times the task out. (No draw when off: seeded runs stay as
        # they were.)
        if profile.lost_rate and rng.random() < profile.lost_rate:
            noticed = task.started_at + LOST_NOTICED_AFTER * (limit or LOST_DEFAULT_US)
            plane.scheduler.at(noticed, self._end, task, task.generation, True, LOST)
            return
        if rng.random() < profile.cancel_rate:
            plane.scheduler.at(task.started_at + work // 2, self._cancel, task, task.generation)
            return
        if rng.random() < profile.timeout_rate or (limit and work > limit):
            plane.scheduler.at(task.started_at + (limit or work), self._time_out, task,
                               task.generation)
            return
        failed = rng.random() < profile.error_rate
        if failed or not profile.subtask_children:
            pass
        elif len(task.parent_task_ids) < profile.subtask_depth:
            plane.scheduler.at(task.started_at + work // 2, self._spawn_children, task,
                               task.generation)
        plane.scheduler.at(task.started_at + work, self._finish, task, task.generation, failed)

    def _cancel(self, task: SimTask, generation: int) -> None:
        if task.generation == generation:
            self._plane.cancel_tasks([task], "cancelled by the client")

    def _time_out(self, task: SimTask, generation: int) -> None:
        if task.generation == generation:
            self.release(task)
            self._plane.end(task, TaskStatus.TIMEOUT, "task exceeded its max_duration")

    def _spawn_children(self, task: SimTask, generation: int) -> None:
        if task.generation != generation:
            return
        plane, count = self._plane, self._profile(task).subtask_children
        prefix = f"sub-{task.task_id[:8]}"
        payloads: list[ResultSpec] = [(f"{prefix}-payload-{i}", b"p", False) for i in range(count)]
        outputs: list[ResultSpec] = [(f"{prefix}-output-{i}", None, False) for i in range(1, count)]
        try:
            created = plane.create_results(task.session_id, payloads + outputs, task.task_id)
            # The first child takes over the parent's first output: a result owner update.
            output_ids = [task.expected_output_ids[0], *(r.result_id for r in created[count:])]
            pairs = zip(created[:count], output_ids, strict=True)
            creations = [TaskCreation(p.result_id, [o]) for p, o in pairs]
            plane.submit_tasks(task.session_id, None, creations, task.task_id, parent=task)
        except PlaneError:
            return  # the session no longer takes submissions; the parent just goes on

    def _finish(self, task: SimTask, generation: int, failed: bool) -> None:
        if task.generation != generation:
            return
        plane, profile = self._plane, self._profile(task)
        task.processed_at = plane.now()
        ended = task.processed_at + profile.finalize.sample_us(plane.rng)
        plane.scheduler.at(ended, self._end, task, task.generation, failed)

    def _end(self, task: SimTask, generation: int, failed: bool,
             message: str = "worker failed: simulated error") -> None:
        if task.generation != generation:
            return
        self.release(task)
        plane = self._plane
        if not failed:
            plane.end(task, TaskStatus.COMPLETED)
        elif len(task.retry_of_ids) < task.options.max_retries:
            plane.retry(task, message)
        else:
            plane.end(task, TaskStatus.ERROR, message)


def _max_duration_us(task: SimTask) -> int:
    duration = task.options.max_duration
    return int(duration.seconds) * 1_000_000 + int(duration.nanos) // 1000


class WorkerPools:
    """Every partition's pool, wired to the control plane's ready and release hooks."""

    def __init__(self, plane: ControlPlane) -> None:
        self.pools = {pid: PartitionPool(p, plane) for pid, p in plane.partitions.items()}
        plane.on_ready.append(self._ready)
        plane.on_release.append(self._release)

    def _ready(self, task: SimTask) -> None:
        self.pools[task.partition_id].enqueue(task)

    def _release(self, task: SimTask) -> None:
        pool = self.pools.get(task.partition_id)
        if pool is not None:
            pool.release(task)
