"""What every servicer shares: turning the plane's refusals into gRPC statuses, and fault hooks."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc

from armonik_observe.simulator.plane import ControlPlane, PlaneError
from armonik_observe.simulator.query import Entity, QueryError, run_list_query

Handler = TypeVar("Handler", bound=Callable[..., Any])


def unary(method: Callable[[Any, Any, Any], Any]) -> Callable[[Any, Any, Any], Awaitable[Any]]:
    """Serve a synchronous handler, mapping refusals to the status a real server gives."""

    @functools.wraps(method)
    async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except PlaneError as error:
            await context.abort(error.code, error.message)
        except QueryError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))

    return handler


class PlaneServicer:
    """Mixin holding the control plane a servicer answers from."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane


def list_page(records: Sequence[Any], entity: Entity, request: Any) -> tuple[list[Any], int]:
    """Answer a ListX request (filters, a required sort, paging): (page, total)."""
    if not request.HasField("sort"):
        raise invalid("sort must be set")
    return run_list_query(records, entity, request.filters, request.sort.field,
                          request.sort.direction, request.page, request.page_size)


def invalid(message: str) -> PlaneError:
    """An INVALID_ARGUMENT refusal."""
    return PlaneError(grpc.StatusCode.INVALID_ARGUMENT, message)
