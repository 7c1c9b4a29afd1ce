"""Events service: one never-ending stream of a session's task and result events."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import grpc
from armonik.protogen.client.events_service_pb2_grpc import EventsServicer

from armonik_observe.simulator.faults import FaultPlan
from armonik_observe.simulator.plane import ControlPlane, PlaneError
from armonik_observe.simulator.query import Entity, QueryError, compile_filters
from armonik_observe.simulator.query import event_filter_violation as violation


class Events(EventsServicer):
    """Serves GetEvents with the real server's delivery semantics and the plan's stream cuts."""

    def __init__(self, plane: ControlPlane, faults: FaultPlan, rng: random.Random) -> None:
        self.plane = plane
        self.faults = faults
        self._rng = rng

    async def GetEvents(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        try:
            sub = self._subscribe(request)
        except PlaneError as error:
            await context.abort(error.code, error.message)
        except QueryError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        bus = self.plane.bus
        bus.policy.duplicate_rate = self.faults.duplicates
        bus.policy.reorder_rate = self.faults.reorder
        sent = 0
        try:
            async for message in bus.messages(sub):
                yield message
                sent += 1
                if self._should_cut(sent):
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "simulated fault: stream cut")
        finally:
            bus.unsubscribe(sub)
        # The bus closed the stream (a restart): the connection drops.
        await context.abort(grpc.StatusCode.UNAVAILABLE, "server shutting down")

    def _should_cut(self, sent: int) -> bool:
        plan = self.faults
        if plan.cut_after is not None and sent >= plan.cut_after:
            return True
        return bool(plan.cut_rate) and self._rng.random() < plan.cut_rate

    def _subscribe(self, request: Any) -> Any:
        plane = self.plane
        session_id = request.session_id
        plane.session(session_id)
        for entity, filters in ((Entity.TASK, request.tasks_filters),
                                (Entity.RESULT, request.results_filters)):
            problem = violation(entity, filters)
            if problem:
                raise QueryError(problem)
        task_filter = compile_filters(Entity.TASK, request.tasks_filters)
        result_filter = compile_filters(Entity.RESULT, request.results_filters)
        return plane.bus.subscribe(
            session_id,
            [int(k) for k in request.returned_events],
            task_filter if getattr(request.tasks_filters, "or") else None,
            result_filter if getattr(request.results_filters, "or") else None,
            plane.session_tasks(session_id),
            plane.session_results(session_id),
        )
