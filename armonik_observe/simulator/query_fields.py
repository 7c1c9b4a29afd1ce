"""Field tables of the simulator's list queries: which record attribute each API field names.

Each entity (tasks, sessions, results, partitions, applications) maps the enum numbers of its
proto `*Field` messages to a `FieldSpec`: a display name, the kind of value (which decides the
filter condition it accepts) and a getter. Getters are `operator.attrgetter`s where possible,
because a query may run them over a million records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from operator import attrgetter
from typing import Any

from armonik.protogen.common import (
    applications_fields_pb2,
    partitions_fields_pb2,
    results_fields_pb2,
    sessions_fields_pb2,
    tasks_fields_pb2,
)

Getter = Callable[[Any], Any]


class Entity(Enum):
    """The kinds of records a list request can query; the value names them in messages."""

    TASK = "task"
    SESSION = "session"
    RESULT = "result"
    PARTITION = "partition"
    APPLICATION = "application"


class Kind(Enum):
    """The type of a field's values; the value is the filter condition that field accepts."""

    STRING = "filter_string"
    NUMBER = "filter_number"
    BOOLEAN = "filter_boolean"
    STATUS = "filter_status"
    DATE = "filter_date"
    DURATION = "filter_duration"
    ARRAY = "filter_array"


# Kinds whose values may be None (an unset timestamp or a duration of a task still running).
NULLABLE_KINDS = frozenset({Kind.DATE, Kind.DURATION})


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One queryable field: its name, its kind (None: neither filterable nor sortable), a getter."""

    name: str
    kind: Kind | None
    get: Getter


# (kind, getter) of one field, before its enum number is known.
_Spec = tuple[Kind | None, Getter]


def _max_duration(record: Any) -> int | None:
    """The record's options.max_duration in micros, None when the option is unset."""
    options = record.options
    return options.max_duration.ToMicroseconds() if options.HasField("max_duration") else None


def generic_option(key: str) -> FieldSpec:
    """A free-form task option, read from the `options.options` map ("" when the key is absent)."""
    return FieldSpec(f"options[{key!r}]", Kind.STRING, lambda r: r.options.options.get(key, ""))


def _table(enum: Any, prefix: str, specs: Mapping[str, _Spec]) -> dict[int, FieldSpec]:
    """Key specs by their wire enum number; `enum.Value` fails at import on a misspelt name."""
    return {enum.Value(prefix + name): FieldSpec(name, *spec) for name, spec in specs.items()}


def _plain(kind: Kind, *names: str) -> dict[str, _Spec]:
    """Fields stored under the lower-cased enum name."""
    return {name: (kind, attrgetter(name.lower())) for name in names}


_OPTION_SPECS: dict[str, _Spec] = {
    "MAX_DURATION": (Kind.DURATION, _max_duration),
    "MAX_RETRIES": (Kind.NUMBER, attrgetter("options.max_retries")),
    "PRIORITY": (Kind.NUMBER, attrgetter("options.priority")),
    "PARTITION_ID": (Kind.STRING, attrgetter("options.partition_id")),
    "APPLICATION_NAME": (Kind.STRING, attrgetter("options.application_name")),
    "APPLICATION_VERSION": (Kind.STRING, attrgetter("options.application_version")),
    "APPLICATION_NAMESPACE": (Kind.STRING, attrgetter("options.application_namespace")),
    "APPLICATION_SERVICE": (Kind.STRING, attrgetter("options.application_service")),
    "ENGINE_TYPE": (Kind.STRING, attrgetter("options.engine_type")),
}

_TASK_SUMMARY_SPECS: dict[str, _Spec] = {
    **_plain(Kind.STRING, "SESSION_ID", "OWNER_POD_ID", "INITIAL_TASK_ID", "POD_HOSTNAME", "ERROR"),
    **_plain(Kind.STRING, "PAYLOAD_ID", "CREATED_BY", "TASK_ID"),
    **_plain(Kind.STATUS, "STATUS"),
    **_plain(Kind.DATE, "CREATED_AT", "SUBMITTED_AT", "STARTED_AT", "ENDED_AT", "POD_TTL"),
    **_plain(Kind.DATE, "RECEIVED_AT", "ACQUIRED_AT", "PROCESSED_AT", "FETCHED_AT"),
    "CREATION_TO_END_DURATION": (Kind.DURATION, attrgetter("creation_to_end")),
    "PROCESSING_TO_END_DURATION": (Kind.DURATION, attrgetter("processing_to_end")),
    "RECEIVED_TO_END_DURATION": (Kind.DURATION, attrgetter("received_to_end")),
}

_SESSION_RAW_SPECS: dict[str, _Spec] = {
    **_plain(Kind.STRING, "SESSION_ID"),
    **_plain(Kind.STATUS, "STATUS"),
    **_plain(Kind.ARRAY, "PARTITION_IDS"),
    # The real server stores options as a sub-document: neither filterable nor sortable.
    "OPTIONS": (None, attrgetter("options")),
    **_plain(Kind.DATE, "CREATED_AT", "CANCELLED_AT", "CLOSED_AT", "PURGED_AT", "DELETED_AT"),
    **_plain(Kind.DURATION, "DURATION"),
    **_plain(Kind.BOOLEAN, "WORKER_SUBMISSION", "CLIENT_SUBMISSION"),
}

_RESULT_RAW_SPECS: dict[str, _Spec] = {
    **_plain(Kind.STRING, "SESSION_ID", "NAME", "OWNER_TASK_ID", "RESULT_ID", "CREATED_BY"),
    **_plain(Kind.STATUS, "STATUS"),
    **_plain(Kind.DATE, "CREATED_AT", "COMPLETED_AT"),
    **_plain(Kind.NUMBER, "SIZE"),
    # Bytes on the wire; compared as lower-case hex so string filters have a defined meaning.
    "OPAQUE_ID": (Kind.STRING, lambda r: r.opaque_id.hex()),
    **_plain(Kind.BOOLEAN, "MANUAL_DELETION"),
}

_PARTITION_RAW_SPECS: dict[str, _Spec] = {
    "ID": (Kind.STRING, attrgetter("partition_id")),
    **_plain(Kind.ARRAY, "PARENT_PARTITION_IDS"),
    **_plain(Kind.NUMBER, "POD_RESERVED", "POD_MAX", "PREEMPTION_PERCENTAGE", "PRIORITY"),
}

_tf, _sf = tasks_fields_pb2, sessions_fields_pb2
_OPT = "TASK_OPTION_ENUM_FIELD_"

# entity -> name of the member set in the `field` oneof -> enum number -> spec. The generic
# option member (`task_option_generic_field`) is handled by `generic_option` instead.
SCHEMAS: dict[Entity, dict[str, dict[int, FieldSpec]]] = {
    Entity.TASK: {
        "task_summary_field": _table(
            _tf.TaskSummaryEnumField, "TASK_SUMMARY_ENUM_FIELD_", _TASK_SUMMARY_SPECS
        ),
        "task_option_field": _table(_tf.TaskOptionEnumField, _OPT, _OPTION_SPECS),
    },
    Entity.SESSION: {
        "session_raw_field": _table(
            _sf.SessionRawEnumField, "SESSION_RAW_ENUM_FIELD_", _SESSION_RAW_SPECS
        ),
        "task_option_field": _table(_sf.TaskOptionEnumField, _OPT, _OPTION_SPECS),
    },
    Entity.RESULT: {
        "result_raw_field": _table(
            results_fields_pb2.ResultRawEnumField, "RESULT_RAW_ENUM_FIELD_", _RESULT_RAW_SPECS
        ),
    },
    Entity.PARTITION: {
        "partition_raw_field": _table(
            partitions_fields_pb2.PartitionRawEnumField,
            "PARTITION_RAW_ENUM_FIELD_",
            _PARTITION_RAW_SPECS,
        ),
    },
    Entity.APPLICATION: {
        "application_field": _table(
            applications_fields_pb2.ApplicationRawEnumField,
            "APPLICATION_RAW_ENUM_FIELD_",
            _plain(Kind.STRING, "NAME", "VERSION", "NAMESPACE", "SERVICE"),
        ),
    },
}

# Entities whose field message also offers `task_option_generic_field`.
GENERIC_OPTION_ENTITIES = frozenset({Entity.TASK, Entity.SESSION})
