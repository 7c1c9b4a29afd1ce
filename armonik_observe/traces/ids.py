"""Deterministic trace and span ids: the same session and task always give the same ids.

A session is a trace (its id from the session id); each task attempt, each of its phases and
the session's root span have a span id from their own ids. A re-export after a restart, or
from the archive, therefore gives the very same spans, which backends de-duplicate, and a task
span can name its session's root span as parent before that span exists.
"""

from __future__ import annotations

from functools import lru_cache
from hashlib import blake2b

from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

SESSION_SPAN = "session"


def _digest(text: str, size: int, person: bytes) -> int:
    value = int.from_bytes(blake2b(text.encode(), digest_size=size, person=person).digest())
    return value or 1  # 0 is the invalid id


@lru_cache(maxsize=4096)  # a page's tasks share a few sessions
def trace_id(session_id: str) -> int:
    """The 128-bit trace id of a session."""
    return _digest(session_id, 16, b"armonik-trace")


def span_id(entity_id: str, part: str = "") -> int:
    """The 64-bit span id of a task attempt (part ""), one of its phases, or a session's root
    span (part SESSION_SPAN)."""
    return _digest(f"{entity_id}\x00{part}", 8, b"armonik-span")


@lru_cache(maxsize=4096)
def session_span_id(session_id: str) -> int:
    """The span id of a session's root span."""
    return span_id(session_id, SESSION_SPAN)


def sampled(trace: int, ratio: float) -> bool:
    """Whether a trace is kept at `ratio`: the OTel SDK's TraceIdRatioBased rule (its lower 64
    bits below ratio x 2^64), so that every span of a session gets the same answer."""
    return trace & TraceIdRatioBased.TRACE_ID_LIMIT < TraceIdRatioBased.get_bound_for_rate(ratio)


def hex_ids(trace: int, span: int) -> tuple[str, str]:
    """The ids as W3C trace-context hex strings (32 and 16 digits)."""
    return f"{trace:032x}", f"{span:016x}"
