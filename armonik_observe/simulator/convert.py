"""Turn simulator records into the official protobuf messages."""

from __future__ import annotations

from typing import Any

from armonik.protogen.common import (
    partitions_common_pb2,
    results_common_pb2,
    sessions_common_pb2,
    tasks_common_pb2,
)
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from armonik_observe.simulator.records import SimPartition, SimResult, SimSession, SimTask

_TASK_TIMES = (
    "created_at",
    "submitted_at",
    "received_at",
    "acquired_at",
    "fetched_at",
    "started_at",
    "processed_at",
    "ended_at",
    "pod_ttl",
)
_TASK_DURATIONS = {
    "creation_to_end_duration": "creation_to_end",
    "processing_to_end_duration": "processing_to_end",
    "received_to_end_duration": "received_to_end",
}


def timestamp(micros: int) -> Timestamp:
    """Build a protobuf Timestamp from epoch microseconds."""
    seconds, rest = divmod(micros, 1_000_000)
    return Timestamp(seconds=seconds, nanos=rest * 1000)


def duration(micros: int) -> Duration:
    """Build a protobuf Duration from microseconds."""
    seconds, rest = divmod(micros, 1_000_000)
    return Duration(seconds=seconds, nanos=rest * 1000)


def timestamp_micros(value: Timestamp) -> int:
    """Read a protobuf Timestamp as epoch microseconds."""
    return int(value.seconds) * 1_000_000 + int(value.nanos) // 1000


def duration_micros(value: Duration) -> int:
    """Read a protobuf Duration as microseconds."""
    return int(value.seconds) * 1_000_000 + int(value.nanos) // 1000


def _set_times(message: Any, task: SimTask) -> None:
    for name in _TASK_TIMES:
        value = getattr(task, name)
        if value is not None:
            getattr(message, name).CopyFrom(timestamp(value))
    for proto_name, attribute in _TASK_DURATIONS.items():
        value = getattr(task, attribute)
        if value is not None:
            getattr(message, proto_name).CopyFrom(duration(value))


def task_detailed(task: SimTask) -> Any:
    """Build a TaskDetailed message."""
    message = tasks_common_pb2.TaskDetailed(
        id=task.task_id,
        session_id=task.session_id,
        owner_pod_id=task.owner_pod_id,
        initial_task_id=task.initial_task_id,
        parent_task_ids=task.parent_task_ids,
        data_dependencies=task.data_dependencies,
        expected_output_ids=task.expected_output_ids,
        retry_of_ids=task.retry_of_ids,
        status=int(task.status),
        status_message=task.status_message,
        options=task.options,
        payload_id=task.payload_id,
        created_by=task.created_by,
        pod_hostname=task.pod_hostname,
        output=tasks_common_pb2.TaskDetailed.Output(
            success=task.output_success, error=task.output_error
        ),
    )
    _set_times(message, task)
    return message


def task_summary(task: SimTask, with_errors: bool = True) -> Any:
    """Build a TaskSummary message (the error text only when asked for)."""
    message = tasks_common_pb2.TaskSummary(
        id=task.task_id,
        session_id=task.session_id,
        owner_pod_id=task.owner_pod_id,
        initial_task_id=task.initial_task_id,
        count_parent_task_ids=len(task.parent_task_ids),
        count_data_dependencies=len(task.data_dependencies),
        count_expected_output_ids=len(task.expected_output_ids),
        count_retry_of_ids=len(task.retry_of_ids),
        status=int(task.status),
        status_message=task.status_message,
        options=task.options,
        payload_id=task.payload_id,
        created_by=task.created_by,
        error=task.output_error if with_errors else "",
        pod_hostname=task.pod_hostname,
    )
    _set_times(message, task)
    return message


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_REPEATED_FIELD_1 = b"\x0a"  # field 1, length-delimited: `tasks` in ListTasksResponse


def task_summary_wire(task: SimTask, with_errors: bool) -> bytes:
    """A task summary encoded as one element of ListTasksResponse.tasks, cached once ended."""
    cache = task.summary_wire
    if cache is not None and with_errors in cache:
        return cache[with_errors]
    payload = task_summary(task, with_errors).SerializeToString()
    wire = _REPEATED_FIELD_1 + _varint(len(payload)) + payload
    if task.ended_at is not None:
        if cache is None:
            task.summary_wire = cache = {}
        cache[with_errors] = wire
    return wire


def list_tasks_response(
    tasks: list[SimTask], with_errors: bool, page: int, page_size: int, total: int
) -> Any:
    """Build a ListTasksResponse from cached summary bytes: parsing beats building 20x."""
    joined = b"".join(task_summary_wire(t, with_errors) for t in tasks)
    response = tasks_common_pb2.ListTasksResponse.FromString(joined)
    response.page, response.page_size, response.total = page, page_size, total
    return response


def session_raw(session: SimSession, with_task_options: bool = True) -> Any:
    """Build a SessionRaw message."""
    message = sessions_common_pb2.SessionRaw(
        session_id=session.session_id,
        status=int(session.status),
        client_submission=session.client_submission,
        worker_submission=session.worker_submission,
        partition_ids=session.partition_ids,
        created_at=timestamp(session.created_at),
    )
    if with_task_options:
        message.options.CopyFrom(session.options)
    for name in ("cancelled_at", "closed_at", "purged_at", "deleted_at"):
        value = getattr(session, name)
        if value is not None:
            getattr(message, name).CopyFrom(timestamp(value))
    if session.duration is not None:
        message.duration.CopyFrom(duration(session.duration))
    return message


def result_raw(result: SimResult) -> Any:
    """Build a ResultRaw message."""
    message = results_common_pb2.ResultRaw(
        session_id=result.session_id,
        name=result.name,
        owner_task_id=result.owner_task_id,
        status=int(result.status),
        created_at=timestamp(result.created_at),
        result_id=result.result_id,
        size=result.size,
        created_by=result.created_by,
        opaque_id=result.opaque_id,
        manual_deletion=result.manual_deletion,
    )
    if result.completed_at is not None:
        message.completed_at.CopyFrom(timestamp(result.completed_at))
    return message


def partition_raw(partition: SimPartition) -> Any:
    """Build a PartitionRaw message."""
    return partitions_common_pb2.PartitionRaw(
        id=partition.partition_id,
        parent_partition_ids=partition.parent_partition_ids,
        pod_reserved=partition.pod_reserved,
        pod_max=partition.pod_max,
        pod_configuration=partition.pod_configuration,
        preemption_percentage=partition.preemption_percentage,
        priority=partition.priority,
    )
