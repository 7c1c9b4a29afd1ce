"""Plays a scenario: opens sessions on schedule and submits their task graphs as a client would."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime

from armonik.protogen.common.objects_pb2 import TaskOptions
from google.protobuf.duration_pb2 import Duration

from armonik_observe.model import SessionStatus
from armonik_observe.simulator.plane import ControlPlane, PlaneError, ResultSpec, TaskCreation
from armonik_observe.simulator.scenario import GraphSpec, Scenario, SessionGroup

MICROS = 1_000_000


class Workload:
    """Schedules every session of a scenario on the control plane."""

    def __init__(self, plane: ControlPlane, scenario: Scenario, *, start_us: int) -> None:
        self._plane = plane
        self._scenario = scenario
        self._start_us = start_us
        # Sessions still to arrive; a group repeating for ever keeps this above 0.
        self._pending_sessions = sum(g.count or 1 for g in scenario.sessions)
        self._submitting: set[str] = set()
        self._auto_close: set[str] = set()
        self.session_ids: list[str] = []
        plane.on_idle.append(self._defer_idle_check)

    def start(self) -> None:
        """Schedule the arrival of every session; a group repeating for ever schedules its
        next arrival as each one opens."""
        for group in self._scenario.sessions:
            for index in range(group.count or 1):
                self._plane.scheduler.at(self._arrival_us(group, index), self._open, group, index)

    def _arrival_us(self, group: SessionGroup, index: int) -> int:
        return self._start_us + int((group.start + index * group.every) * MICROS)

    @property
    def finished(self) -> bool:
        """True once every session has arrived and finished submitting (never, for a group
        that repeats for ever)."""
        return self._pending_sessions == 0 and not self._submitting

    def _open(self, group: SessionGroup, index: int) -> None:
        plane = self._plane
        if group.count is None:
            plane.scheduler.at(self._arrival_us(group, index + 1), self._open, group, index + 1)
        session = plane.create_session(_options(group, plane.now()), [group.partition],
                                       group.task_profile)
        session_id = session.session_id
        self.session_ids.append(session_id)
        if group.count is not None:
            self._pending_sessions -= 1
        if group.close_when_done:
            self._auto_close.add(session_id)
        for step in group.lifecycle:
            due = plane.now() + int(step.at * MICROS)
            plane.scheduler.at(due, self._lifecycle, session_id, step.action)
        self._submitting.add(session_id)
        _GRAPHS[group.graph.kind](self, session_id, group.graph)

    def _lifecycle(self, session_id: str, action: str) -> None:
        operation: Callable[[str], object] = getattr(self._plane, f"{action}_session")
        # e.g. resuming a session that was cancelled meanwhile: a client would shrug
        with contextlib.suppress(PlaneError):
            operation(session_id)
        if action in ("cancel", "delete"):
            self._submitting.discard(session_id)

    def _defer_idle_check(self, session_id: str) -> None:
        # Checked after the current action, so a retry being created is counted first.
        self._plane.scheduler.at(self._plane.now(), self._session_idle, session_id)

    def _submission_done(self, session_id: str) -> None:
        self._submitting.discard(session_id)
        self._session_idle(session_id)

    def _session_idle(self, session_id: str) -> None:
        state = self._plane.sessions.get(session_id)
        if (
            state is not None
            and session_id in self._auto_close
            and session_id not in self._submitting
            and state.active == 0
            and state.record.status == SessionStatus.RUNNING
        ):
            self._plane.close_session(session_id)
            self._auto_close.discard(session_id)

    # -- graphs -------------------------------------------------------------------------------

    def _tasks(
        self, session_id: str, count: int, inputs: list[list[str]] | None = None
    ) -> list[str]:
        """Submit `count` tasks (each with its payload and one output); return the outputs."""
        plane = self._plane
        specs: list[ResultSpec] = [(f"payload-{i}", b"payload", False) for i in range(count)]
        specs += [(f"output-{i}", None, False) for i in range(count)]
        results = plane.create_results(session_id, specs)
        payloads, outputs = results[:count], results[count:]
        creations = [
            TaskCreation(p.result_id, [o.result_id], inputs[i] if inputs else ())
            for i, (p, o) in enumerate(zip(payloads, outputs, strict=True))
        ]
        plane.submit_tasks(session_id, None, creations)
        return [o.result_id for o in outputs]

    def _bag(self, session_id: str, graph: GraphSpec) -> None:
        for start in range(0, graph.tasks, graph.batch):
            self._tasks(session_id, min(graph.batch, graph.tasks - start))
        self._submission_done(session_id)

    def _fanout(self, session_id: str, graph: GraphSpec) -> None:
        (root,) = self._tasks(session_id, 1)
        middle = self._tasks(session_id, graph.tasks, [[root]] * graph.tasks)
        self._tasks(session_id, 1, [middle])
        self._submission_done(session_id)

    def _chain(self, session_id: str, graph: GraphSpec) -> None:
        (previous,) = self._tasks(session_id, 1)
        for _ in range(graph.tasks - 1):
            (previous,) = self._tasks(session_id, 1, [[previous]])
        self._submission_done(session_id)

    def _stream(self, session_id: str, graph: GraphSpec) -> None:
        plane = self._plane
        interval = int(graph.batch / graph.rate * MICROS)
        stop = plane.now() + int(graph.duration * MICROS) if graph.duration else None
        self._stream_batch(session_id, graph, interval, stop)

    def _stream_batch(
        self, session_id: str, graph: GraphSpec, interval: int, stop: int | None
    ) -> None:
        plane = self._plane
        if (stop is not None and plane.now() >= stop) or session_id not in self._submitting:
            self._submission_done(session_id)
            return
        try:
            self._tasks(session_id, graph.batch)
        except PlaneError:
            self._submission_done(session_id)
            return
        # From the batch's own due time, so lateness under load does not lower the rate.
        due = plane.scheduler.current_us + interval
        plane.scheduler.at(due, self._stream_batch, session_id, graph, interval, stop)

    def set_stream_rate(self, rate: float) -> None:
        """Override the rate of every stream graph (the `--rate` option)."""
        groups = tuple(
            dataclasses.replace(g, graph=dataclasses.replace(g.graph, rate=rate))
            if g.graph.kind == "stream"
            else g
            for g in self._scenario.sessions
        )
        self._scenario = dataclasses.replace(self._scenario, sessions=groups)


_GRAPHS: dict[str, Callable[[Workload, str, GraphSpec], None]] = {
    "bag": Workload._bag,
    "subtasking": Workload._bag,  # roots are a bag; their profile makes them submit subtasks
    "fanout": Workload._fanout,
    "chain": Workload._chain,
    "stream": Workload._stream,
}


def _options(group: SessionGroup, now_us: int) -> TaskOptions:
    app = group.application
    seconds = int(group.max_duration)
    generic = {"group": group.name}
    if group.deadline:
        due = datetime.fromtimestamp(now_us / MICROS + group.deadline, UTC)
        generic["deadline"] = due.isoformat().replace("+00:00", "Z")
    return TaskOptions(
        partition_id=group.partition,
        max_retries=group.max_retries,
        max_duration=Duration(seconds=seconds, nanos=int((group.max_duration - seconds) * 1e9)),
        priority=group.priority,
        application_name=app.name,
        application_version=app.version,
        application_namespace=app.namespace,
        application_service=app.service,
        engine_type="Unified",
        options=generic,
    )
