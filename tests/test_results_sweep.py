"""Results sweeps: a session whose sweep keeps failing does not hold up the others."""

from __future__ import annotations

from typing import Any

import grpc
from armonik.protogen.common import results_common_pb2 as results

from armonik_observe.collectors.results import MAX_SWEEP_FAILURES, ResultsSweeper
from armonik_observe.model import SessionInfo
from armonik_observe.pipeline import Batch


class OneBadSession:
    """A connection whose ListResults fails for one session (too large an answer, say) and,
    while `down`, for every session as a plane that is down does."""

    def __init__(self) -> None:
        self.down = False
        self.asked: list[str] = []
        self.calls = 0  # answered calls, as the poller reads them

    async def unary(self, stub: Any, method: str, request: Any) -> Any:
        session_id = getattr(getattr(request.filters, "or")[0], "and")[0].filter_string.value
        self.asked.append(session_id)
        if self.down:
            raise error(grpc.StatusCode.UNAVAILABLE)
        if session_id == "bad":
            raise error(grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.calls += 1
        return results.ListResultsResponse(
            results=[results.ResultRaw(session_id=session_id, result_id=f"{session_id}-r")],
            total=1)


def error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "test")


def ended(session_id: str) -> SessionInfo:
    return SessionInfo(session_id, "CLOSED", ("default",), created_at=1, closed_at=2)


async def test_a_session_that_fails_goes_last_and_is_given_up_after_a_few_tries() -> None:
    connection = OneBadSession()
    swept: list[str] = []

    def publish(batch: Batch) -> None:
        swept.extend(r.session_id for r in batch.results)

    poller = ResultsSweeper(connection=connection, publish=publish,  # type: ignore[arg-type]
                           interval=1.0, start_point=lambda: 0)
    poller.note([ended("bad"), ended("a"), ended("b")])
    connection.down = True  # the plane down: nobody's fault, nothing is given up
    # Through the poller's own guard, as its run loop calls it: a failure is recorded, not raised.
    for _ in range(MAX_SWEEP_FAILURES + 1):
        assert await poller._poll_safely() is False
        assert poller.last_failure.startswith("UNAVAILABLE")
    connection.down = False
    for _ in range(MAX_SWEEP_FAILURES):  # "bad" fails each time, behind the others
        assert await poller._poll_safely() is False
        assert poller.last_failure.startswith("RESOURCE_EXHAUSTED")
    assert swept == ["a", "b"]  # swept on the second poll, "bad" having gone last
    assert await poller._poll_safely() is True  # given up: the poll succeeds
    assert poller.remembered() == 2  # a and b swept; "bad" neither due nor swept
    assert connection.asked.count("bad") == (MAX_SWEEP_FAILURES + 1) + MAX_SWEEP_FAILURES
