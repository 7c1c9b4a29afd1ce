"""Server-side evaluation of ArmoniK list requests over simulator records: filter, sort, page.

A list request carries filters (an OR of ANDs of field conditions), one sort field, a direction,
a page and a page size. Everything a request names is resolved and checked once, up front, into
plain closures over record attributes: the per-record work touches no request protobuf, so a
query stays fast over a million records. A malformed request raises `QueryError`, which the
server turns into INVALID_ARGUMENT.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import reduce
from operator import contains, eq, ge, gt, le, lt, ne
from typing import Any, TypeVar

from armonik.protogen.common import filters_common_pb2, sort_direction_pb2

from armonik_observe.simulator.query_fields import (
    GENERIC_OPTION_ENTITIES,
    NULLABLE_KINDS,
    SCHEMAS,
    Entity,
    FieldSpec,
    Getter,
    Kind,
    generic_option,
)

__all__ = [
    "Application",
    "Entity",
    "FieldSpec",
    "Kind",
    "QueryError",
    "applications_of",
    "compile_filters",
    "event_filter_violation",
    "match_all",
    "paginate",
    "resolve_field",
    "run_list_query",
    "sort_key",
    "sort_records",
]

T = TypeVar("T")
Predicate = Callable[[Any], bool]
Compare = Callable[[Any, Any], bool]
SortKey = Callable[[Any], Any]


class QueryError(ValueError):
    """A malformed list request; the message names the problem (served as INVALID_ARGUMENT)."""


@dataclass(frozen=True, slots=True)
class Application:
    """An application: one distinct (name, version, namespace, service) of task options."""

    name: str
    version: str
    namespace: str
    service: str


def applications_of(tasks: Iterable[Any]) -> list[Application]:
    """List the distinct applications named by the tasks' options, in order of first use."""
    keys = dict.fromkeys(
        (o.application_name, o.application_version, o.application_namespace, o.application_service)
        for o in (task.options for task in tasks)
    )
    return [Application(*key) for key in keys]


# ---------------------------------------------------------------------------- field resolution


def resolve_field(entity: Entity, field_msg: Any) -> FieldSpec:
    """Resolve a proto `*Field` message (e.g. tasks.TaskField) to the spec of the field it names."""
    member = field_msg.WhichOneof("field")
    if member is None:
        raise QueryError(f"{entity.value} field is not set")
    if member == "task_option_generic_field" and entity in GENERIC_OPTION_ENTITIES:
        return generic_option(field_msg.task_option_generic_field.field)
    table = SCHEMAS[entity].get(member)
    if table is None:
        raise QueryError(f"{entity.value} fields have no {member}")
    number = getattr(field_msg, member).field
    spec = table.get(number)
    if spec is None:
        raise QueryError(f"unknown {entity.value} field {number} ({member})")
    return spec


# ------------------------------------------------------------------------------------- filters


def _not_contains(container: Any, item: Any) -> bool:
    return item not in container


def _operators(enum: Any, prefix: str, **compares: Compare) -> dict[int, Compare]:
    """Key comparisons `compare(field_value, filter_value)` by their wire operator number."""
    return {enum.Value(prefix + name): compare for name, compare in compares.items()}


_fc = filters_common_pb2
_OPERATORS: dict[Kind, dict[int, Compare]] = {
    Kind.STRING: _operators(
        _fc.FilterStringOperator, "FILTER_STRING_OPERATOR_", EQUAL=eq, NOT_EQUAL=ne,
        CONTAINS=contains, NOT_CONTAINS=_not_contains, STARTS_WITH=str.startswith,
        ENDS_WITH=str.endswith,
    ),
    Kind.NUMBER: _operators(
        _fc.FilterNumberOperator, "FILTER_NUMBER_OPERATOR_", EQUAL=eq, NOT_EQUAL=ne,
        LESS_THAN=lt, LESS_THAN_OR_EQUAL=le, GREATER_THAN_OR_EQUAL=ge, GREATER_THAN=gt,
    ),
    Kind.DATE: _operators(
        _fc.FilterDateOperator, "FILTER_DATE_OPERATOR_", EQUAL=eq, NOT_EQUAL=ne,
        BEFORE=lt, BEFORE_OR_EQUAL=le, AFTER_OR_EQUAL=ge, AFTER=gt,
    ),
    Kind.DURATION: _operators(
        _fc.FilterDurationOperator, "FILTER_DURATION_OPERATOR_", EQUAL=eq, NOT_EQUAL=ne,
        SHORTER_THAN=lt, SHORTER_THAN_OR_EQUAL=le, LONGER_THAN_OR_EQUAL=ge, LONGER_THAN=gt,
    ),
    Kind.ARRAY: _operators(
        _fc.FilterArrayOperator, "FILTER_ARRAY_OPERATOR_",
        CONTAINS=contains, NOT_CONTAINS=_not_contains,
    ),
    Kind.STATUS: _operators(
        _fc.FilterStatusOperator, "FILTER_STATUS_OPERATOR_", EQUAL=eq, NOT_EQUAL=ne
    ),
    Kind.BOOLEAN: _operators(_fc.FilterBooleanOperator, "FILTER_BOOLEAN_OPERATOR_", IS=eq),
}  # fmt: skip


def match_all(record: Any) -> bool:
    """The predicate of an empty filter: every record matches."""
    return True


def _condition_value(kind: Kind, condition: Any) -> Any:
    """The filter's operand in the records' own units (ints for statuses, micros for times)."""
    if kind in NULLABLE_KINDS:
        return condition.value.ToMicroseconds()
    return int(condition.value) if kind is Kind.STATUS else condition.value


def _predicate(get: Getter, compare: Compare, value: Any, nullable: bool) -> Predicate:
    """Bind getter, comparison and operand into one closure."""
    if not nullable:
        return lambda r: compare(get(r), value)
    # An unset time is null in the database: only "not equal" matches it.
    if compare is ne:
        return lambda r: (x := get(r)) is None or x != value
    return lambda r: (x := get(r)) is not None and compare(x, value)


def _checked_condition(entity: Entity, spec: FieldSpec, filter_field: Any) -> tuple[Kind, Any]:
    """Return the field's kind and the filter's condition, checking that the two agree."""
    where = f"{entity.value} field {spec.name}"
    if spec.kind is None:
        raise QueryError(f"{where} cannot be filtered")
    member = filter_field.WhichOneof("value_condition")
    if member != spec.kind.value:
        raise QueryError(f"filter on {where} expects {spec.kind.value}, got {member or 'nothing'}")
    return spec.kind, getattr(filter_field, member)


def _compile_field(entity: Entity, filter_field: Any) -> Predicate:
    """Compile one FilterField into a predicate."""
    spec = resolve_field(entity, filter_field.field)
    kind, condition = _checked_condition(entity, spec, filter_field)
    compare = _OPERATORS[kind].get(condition.operator)
    if compare is None:
        raise QueryError(f"unknown {kind.value} operator {condition.operator} on {spec.name}")
    value = _condition_value(kind, condition)
    return _predicate(spec.get, compare, value, kind in NULLABLE_KINDS)


def _both(first: Predicate, second: Predicate) -> Predicate:
    return lambda r: first(r) and second(r)


def _either(first: Predicate, second: Predicate) -> Predicate:
    return lambda r: first(r) or second(r)


def _compile_and(entity: Entity, filters_and: Any) -> Predicate:
    """Compile a FiltersAnd; an empty one matches everything."""
    predicates = [_compile_field(entity, field) for field in getattr(filters_and, "and")]
    return reduce(_both, predicates) if predicates else match_all


def compile_filters(entity: Entity, filters_msg: Any) -> Predicate:
    """Compile a `*.Filters` message (an OR of ANDs) into a fast predicate over records.

    None or an empty OR matches everything, and so does any empty AND. Raises QueryError when a
    field, condition or operator is invalid; every branch is checked even when one matches all.
    """
    if filters_msg is None:
        return match_all
    branches = [_compile_and(entity, branch) for branch in getattr(filters_msg, "or")]
    if not branches or match_all in branches:
        return match_all
    return reduce(_either, branches)


def _filter_fields(filters_msg: Any) -> Iterator[Any]:
    """Every FilterField of a Filters message, across all its branches."""
    for branch in getattr(filters_msg, "or"):
        yield from getattr(branch, "and")


# What the real Events.GetEvents validator refuses in task and result filters.
_EVENT_REJECTED_KINDS = frozenset({Kind.STATUS, Kind.DATE, Kind.DURATION})


def event_filter_violation(entity: Entity, filters_msg: Any) -> str | None:
    """Name the first filter Events.GetEvents would reject (status, date, duration), else None.

    Fields that do not resolve at all raise QueryError, as in `compile_filters`.
    """
    if filters_msg is None:
        return None
    for filter_field in _filter_fields(filters_msg):
        spec = resolve_field(entity, filter_field.field)
        if spec.kind in _EVENT_REJECTED_KINDS:
            return f"event filters cannot use {entity.value} field {spec.name} ({spec.kind.name})"
    return None


# ---------------------------------------------------------------------------------------- sort

_NONE_KEY = (0,)


def _none_first(get: Getter) -> SortKey:
    """Wrap a getter whose values may be None so that None sorts first, as MongoDB sorts null."""

    def key(record: Any) -> Any:
        value = get(record)
        return _NONE_KEY if value is None else (1, value)

    return key


@dataclass(frozen=True, slots=True)
class _SortPlan:
    """A resolved sort field: its getter, and whether the getter may return None."""

    get: Getter
    nullable: bool


def _single_plan(entity: Entity, field_msg: Any) -> _SortPlan:
    if field_msg is None or field_msg.WhichOneof("field") is None:
        raise QueryError("sort field is required")
    spec = resolve_field(entity, field_msg)
    if spec.kind is None:
        raise QueryError(f"{entity.value} field {spec.name} cannot be sorted")
    return _SortPlan(spec.get, spec.kind in NULLABLE_KINDS)


def _plan(entity: Entity, field_msg: Any) -> _SortPlan:
    """Resolve one `*Field` message, or a list of them (ListApplicationsRequest sorts on many)."""
    if field_msg is None or hasattr(field_msg, "WhichOneof"):
        return _single_plan(entity, field_msg)
    keys = [sort_key(entity, field) for field in field_msg]
    if not keys:
        raise QueryError("sort field is required")
    return _SortPlan(lambda r: tuple([k(r) for k in keys]), nullable=False)


def sort_key(entity: Entity, field_msg: Any) -> SortKey:
    """Build a sort key for one `*Field` message, or a list of them (applications sort on many).

    Keys never return None, so `sorted` can compare them; an unset field raises QueryError.
    """
    plan = _plan(entity, field_msg)
    return _none_first(plan.get) if plan.nullable else plan.get


def _sort_in_place(records: list[T], plan: _SortPlan, reverse: bool) -> list[T]:
    """Sort as `sorted(key=sort_key(...))` would, without a wrapped key per record."""
    if not plan.nullable:
        records.sort(key=plan.get, reverse=reverse)
        return records
    # Sorting the set values alone is about twice as fast as comparing (1, value) tuples.
    get = plan.get
    nones = [r for r in records if get(r) is None]
    values = [r for r in records if get(r) is not None]
    values.sort(key=get, reverse=reverse)
    return values + nones if reverse else nones + values


_UNSPECIFIED_DIRECTION = sort_direction_pb2.SORT_DIRECTION_UNSPECIFIED


def _descending(direction: int) -> bool:
    """Whether a SortDirection sorts descending (UNSPECIFIED sorts ascending)."""
    if direction == sort_direction_pb2.SORT_DIRECTION_DESC:
        return True
    if direction in (sort_direction_pb2.SORT_DIRECTION_ASC, _UNSPECIFIED_DIRECTION):
        return False
    raise QueryError(f"unknown sort direction {direction}")


def sort_records(records: Iterable[T], entity: Entity, field_msg: Any, direction: int) -> list[T]:
    """Sort records on a field; stable, so ties keep their input order in both directions."""
    # reverse=True keeps equal keys in input order, unlike reversing an ascending sort.
    return _sort_in_place(list(records), _plan(entity, field_msg), _descending(direction))


# -------------------------------------------------------------------------------------- paging


def _check_paging(page: int, page_size: int) -> None:
    if page < 0:
        raise QueryError(f"page must not be negative, got {page}")
    if page_size < 0:
        raise QueryError(f"page_size must be positive or zero, got {page_size}")


def paginate(records: Sequence[T], page: int, page_size: int) -> tuple[list[T], int]:
    """Return page `page` (from 0) of `page_size` records, and the total number of records."""
    _check_paging(page, page_size)
    # page_size 0 returns no items but the full total: the real server behaves this way, and
    # clients use it to count.
    if page_size == 0:
        return [], len(records)
    start = page * page_size
    return list(records[start : start + page_size]), len(records)


def run_list_query(
    records: Iterable[T],
    entity: Entity,
    filters_msg: Any,
    sort_field_msg: Any,
    direction: int,
    page: int,
    page_size: int,
) -> tuple[list[T], int]:
    """Answer a list request: filter, sort, then page; returns (page items, total matching)."""
    _check_paging(page, page_size)
    keep = compile_filters(entity, filters_msg)
    plan = _plan(entity, sort_field_msg)
    reverse = _descending(direction)
    matched = list(records) if keep is match_all else list(filter(keep, records))
    if page_size == 0:  # a count: no need to sort
        return [], len(matched)
    return paginate(_sort_in_place(matched, plan, reverse), page, page_size)
