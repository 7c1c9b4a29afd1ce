"""Fault injection: failing and slow RPCs, cut streams, messy delivery, bad health, restarts.

The interceptor that injects them sees every call, so it also counts them per RPC
(`Simulator.calls`): what a client costs the control plane.

A plan is parsed from `--faults`, e.g.
`cut-after=500,unavailable=0.1@ListTasks,deadline=0.05,latency=20ms,duplicates=0.01,
reorder=0.01,health=degraded@queue,restart=30/5`, or built in Python by tests. The plan stays
mutable: tests change it while the simulator runs.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from armonik_observe.model import HealthStatus

ALL_RPCS = "*"


class FaultSpecError(ValueError):
    """A `--faults` specification that cannot be parsed."""


@dataclass(slots=True)
class RpcFaults:
    """What goes wrong with the calls of one RPC (or of every RPC, under `*`)."""

    unavailable: float = 0.0
    deadline_exceeded: float = 0.0
    latency_s: float = 0.0


@dataclass(slots=True)
class FaultPlan:
    """Everything that can go wrong, set before a run or changed during it."""

    cut_after: int | None = None
    cut_rate: float = 0.0
    duplicates: float = 0.0
    reorder: float = 0.0
    rpcs: dict[str, RpcFaults] = field(default_factory=dict)
    health: dict[str, HealthStatus] = field(default_factory=dict)
    restart_at_s: float | None = None
    restart_down_s: float = 0.0

    def for_rpc(self, method: str) -> RpcFaults:
        """Faults for one RPC name, falling back to the ones for every RPC."""
        return self.rpcs.get(method) or self.rpcs.get(ALL_RPCS) or RpcFaults()


def _probability(text: str, key: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FaultSpecError(f"{key}: {text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise FaultSpecError(f"{key}: {value} is not a probability between 0 and 1")
    return value


def _seconds(text: str, key: str) -> float:
    scale = 0.001 if text.endswith("ms") else 1.0
    number = text.removesuffix("ms").removesuffix("s")
    try:
        value = float(number) * scale
    except ValueError:
        raise FaultSpecError(f"{key}: {text!r} is not a duration like 20ms or 5s") from None
    if value < 0:
        raise FaultSpecError(f"{key}: a duration cannot be negative")
    return value


def _rpc_fault(plan: FaultPlan, key: str, value: str, target: str) -> None:
    rpc = plan.rpcs.setdefault(target or ALL_RPCS, RpcFaults())
    if key == "unavailable":
        rpc.unavailable = _probability(value, key)
    elif key == "deadline":
        rpc.deadline_exceeded = _probability(value, key)
    else:
        rpc.latency_s = _seconds(value, key)


def _health_fault(plan: FaultPlan, value: str, target: str) -> None:
    try:
        status = HealthStatus[value.upper()]
    except KeyError:
        raise FaultSpecError(f"health: {value!r} is not healthy, degraded or unhealthy") from None
    for service in [target] if target else ["database", "object", "queue"]:
        plan.health[service] = status


def _restart_fault(plan: FaultPlan, value: str) -> None:
    at, _, down = value.partition("/")
    plan.restart_at_s = _seconds(at, "restart")
    plan.restart_down_s = _seconds(down or "5", "restart")


def parse_faults(spec: str) -> FaultPlan:
    """Parse a comma-separated fault specification."""
    plan = FaultPlan()
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, rest = item.partition("=")
        if not sep:
            raise FaultSpecError(f"{item!r}: expected name=value")
        value, _, target = rest.partition("@")
        _apply(plan, key.strip(), value.strip(), target.strip())
    return plan


def _apply(plan: FaultPlan, key: str, value: str, target: str) -> None:
    if key in ("unavailable", "deadline", "latency"):
        _rpc_fault(plan, key, value, target)
    elif key == "cut-after":
        if not value.isdigit() or int(value) < 1:
            raise FaultSpecError(f"cut-after: {value!r} is not a positive count of events")
        plan.cut_after = int(value)
    elif key in ("cut-rate", "duplicates", "reorder"):
        setattr(plan, key.replace("-", "_"), _probability(value, key))
    elif key == "health":
        _health_fault(plan, value, target)
    elif key == "restart":
        _restart_fault(plan, value)
    else:
        known = "cut-after, cut-rate, unavailable, deadline, latency, duplicates, reorder, " \
                "health, restart"
        raise FaultSpecError(f"unknown fault {key!r} (known: {known})")


class FaultInterceptor(grpc.aio.ServerInterceptor):
    """Fails or delays calls as the plan says, before the servicer sees them."""

    def __init__(self, plan: FaultPlan, rng: random.Random) -> None:
        self.plan = plan
        self._rng = rng
        self.calls: Counter[str] = Counter()  # every call received, by RPC name

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        method = str(handler_call_details.method).rsplit("/", 1)[-1]
        self.calls[method] += 1
        faults = self.plan.for_rpc(method)
        failure = self._draw_failure(faults)
        if handler is None or (failure is None and not faults.latency_s):
            return handler
        return _wrapped(handler, failure, faults.latency_s)

    def _draw_failure(self, faults: RpcFaults) -> tuple[grpc.StatusCode, str] | None:
        draw = self._rng.random()
        if draw < faults.unavailable:
            return grpc.StatusCode.UNAVAILABLE, "simulated fault: service unavailable"
        if draw < faults.unavailable + faults.deadline_exceeded:
            return grpc.StatusCode.DEADLINE_EXCEEDED, "simulated fault: deadline exceeded"
        return None


async def _delay_or_fail(
    context: grpc.aio.ServicerContext, failure: tuple[grpc.StatusCode, str] | None, latency: float
) -> None:
    if latency:
        await asyncio.sleep(latency)  # the injected latency itself
    if failure is not None:
        await context.abort(*failure)


def _wrapped(
    handler: Any, failure: tuple[grpc.StatusCode, str] | None, latency: float
) -> grpc.RpcMethodHandler:
    if handler.unary_unary or handler.stream_unary:
        inner = handler.unary_unary or handler.stream_unary

        async def unary_behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await _delay_or_fail(context, failure, latency)
            return await inner(request, context)

        factory = (
            grpc.unary_unary_rpc_method_handler
            if handler.unary_unary
            else grpc.stream_unary_rpc_method_handler
        )
        return factory(unary_behavior, handler.request_deserializer, handler.response_serializer)
    inner_stream = handler.unary_stream or handler.stream_stream

    async def stream_behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await _delay_or_fail(context, failure, latency)
        async for response in inner_stream(request, context):
            yield response

    factory = (
        grpc.unary_stream_rpc_method_handler
        if handler.unary_stream
        else grpc.stream_stream_rpc_method_handler
    )
    return factory(stream_behavior, handler.request_deserializer, handler.response_serializer)
