"""Every archived table declared once: the Arrow schemas, docs/archive.md and the golden snapshot
are generated from the `TABLES` declarations below.

Conventions: times are `timestamp[us, tz=UTC]`; durations are seconds as float64 (`*_seconds`);
statuses and kinds are names, never numbers; lists are `list<string>`, null when unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import pyarrow as pa

from armonik_observe.model import StatusCounts

TIMESTAMP = pa.timestamp("us", tz="UTC")
STRINGS = pa.list_(pa.string())
OPTIONS = pa.map_(pa.string(), pa.string())

DISTINCT_STRINGS = "DELTA_LENGTH_BYTE_ARRAY"
MEASURED_FLOATS = "BYTE_STREAM_SPLIT"

# Column sources other than a record attribute.
OBSERVED = "@observed"  # the exporter clock when the writer took the record
DAY = "@day"  # the UTC day of the row's observed_at: the partition key of unsessioned tables


@dataclass(frozen=True, slots=True)
class Column:
    """One archived column: its Arrow type, what it means and where its value comes from."""

    name: str
    type: pa.DataType
    doc: str
    source: str = ""  # a record attribute, OBSERVED or DAY; empty means the column name
    micros_to_seconds: bool = False
    enum_name: bool = False  # the record holds an IntEnum; archive its name
    # Parquet encoding; empty means dictionary (repeated values), or DELTA_BINARY_PACKED for
    # times. Mostly distinct values (ids, measured durations) would only overflow a dictionary.
    encoding: str = ""
    free_text: bool = False  # messages: nobody filters them by range

    @property
    def prunes(self) -> bool:
        """Whether min/max statistics can skip row groups: scalars, not lists, maps or text.

        Statistics cost 12% of a task row's write (5% on these columns alone) and readers
        never prune on list elements, map entries or messages."""
        return not self.free_text and self.type not in (STRINGS, OPTIONS)

    @property
    def attribute(self) -> str:
        """The record attribute (or special source) this column is read from."""
        return self.source or self.name


@dataclass(frozen=True, slots=True)
class TableSpec:
    """One archived table: its partition key, its observation-time column and its columns."""

    name: str
    doc: str
    partition_key: str  # "session_id" or "date"
    observed_column: str  # newest value of this column dates a partition (retention)
    columns: tuple[Column, ...]
    # Turns buffered records into rows when a record holds several (a count poll, one per status).
    explode: Callable[[Sequence[Any]], Sequence[Any]] | None = None

    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema of the table's segments."""
        return pa.schema([pa.field(c.name, c.type) for c in self.columns])

    def parquet_options(self) -> dict[str, Any]:
        """pq.write_table options: each column's encoding, and statistics where they prune.

        Dictionary-encoding distinct ids (or times) costs most of a write and then falls back
        to plain anyway; dropping it there and min/max statistics on ids doubles the write rate
        and saves a fifth of the bytes (measured on task rows shaped like `large`).
        """
        dictionary: list[str] = []
        encodings: dict[str, str] = {}
        statistics: list[str] = []
        for column in self.columns:
            leaves = _leaf_paths(column)
            encoding = column.encoding or ("DELTA_BINARY_PACKED" if column.type == TIMESTAMP
                                           else "")
            if encoding:
                encodings.update(dict.fromkeys(leaves, encoding))
            else:
                dictionary += leaves
            if encoding != DISTINCT_STRINGS and column.prunes:
                statistics += leaves
        return {"use_dictionary": dictionary, "column_encoding": encodings,
                "write_statistics": statistics}


def _leaf_paths(column: Column) -> list[str]:
    """The Parquet column paths of an Arrow column (lists and maps nest their values)."""
    if column.type == OPTIONS:
        return [f"{column.name}.key_value.key", f"{column.name}.key_value.value"]
    if column.type == STRINGS:
        return [f"{column.name}.list.element"]
    return [column.name]


def _s(name: str, doc: str, source: str = "") -> Column:
    return Column(name, pa.string(), doc, source)


def _id(name: str, doc: str) -> Column:
    """A string column of mostly distinct ids."""
    return Column(name, pa.string(), doc, encoding=DISTINCT_STRINGS)


def _t(name: str, doc: str, source: str = "") -> Column:
    return Column(name, TIMESTAMP, doc, source)


def _seconds(name: str, doc: str, source: str, measured: bool = True) -> Column:
    """Seconds from microseconds; `measured` ones vary per task (a task option does not)."""
    return Column(name, pa.float64(), doc, source, micros_to_seconds=True,
                  encoding=MEASURED_FLOATS if measured else "")


def _list(name: str, doc: str, distinct: bool = False) -> Column:
    return Column(name, STRINGS, doc, encoding=DISTINCT_STRINGS if distinct else "")


_TASK_TIMES = ("created", "submitted", "received", "acquired", "fetched", "started", "processed",
               "ended")

TASKS = TableSpec(
    "tasks",
    "One row per task attempt (task_id) as read from ListTasks pages; the `tasks` view keeps the "
    "most advanced row of each task_id.",
    "session_id",
    "observed_at",
    (
        _id("task_id", "Task id; a retry is a new task id (see retry_of_ids)."),
        _s("session_id", "Session of the task; the partition key."),
        _id("initial_task_id", "First attempt of the task."),
        _id("payload_id", "Result holding the task's payload."),
        _s("created_by", "Task that submitted this one; empty when a client did."),
        _s("partition_id", "Partition the task ran in (task option)."),
        _seconds("max_duration_seconds", "Task option max_duration.", "max_duration",
                 measured=False),
        Column("max_retries", pa.int32(), "Task option max_retries."),
        Column("priority", pa.int32(), "Task option priority."),
        _s("application_name", "Task option application_name."),
        _s("application_version", "Task option application_version."),
        _s("application_namespace", "Task option application_namespace (format 2 on; null "
                                    "in older archives)."),
        _s("application_service", "Task option application_service (format 2 on; null in "
                                  "older archives)."),
        Column("options", OPTIONS, "The generic task options (key to value)."),
        _s("status", "Task status name (COMPLETED, ERROR, ...)."),
        Column("status_message", pa.string(), "Status message of the task.", free_text=True),
        Column("error", pa.string(), "Error reported by the task's output.", free_text=True),
        *(_t(f"{t}_at", f"Server time the task was {t}.") for t in _TASK_TIMES),
        _seconds("creation_to_end_seconds", "Server duration from creation to end.",
                 "creation_to_end"),
        _seconds("processing_to_end_seconds", "Server duration from processing to end.",
                 "processing_to_end"),
        _seconds("received_to_end_seconds", "Server duration from reception to end.",
                 "received_to_end"),
        _s("pod_hostname", "Host name of the pod that ran the task."),
        _s("owner_pod_id", "Pod that owns (or owned) the task."),
        _list("retry_of_ids", "Earlier attempts this task retries; null in summaries."),
        _list("parent_task_ids", "Ancestor tasks; null in summaries."),
        _list("data_dependencies", "Results the task waits for; null in summaries."),
        _list("expected_output_ids", "Results the task must produce; null in summaries.",
              distinct=True),
        _t("observed_at", "Exporter clock when the archive took the row.", OBSERVED),
    ),
)

EVENTS = TableSpec(
    "events",
    "Every session event received from GetEvents streams, as delivered (at least once).",
    "session_id",
    "observed_at",
    (
        _t("observed_at", "Exporter clock when the event was received (the wire has none)."),
        _s("session_id", "Session of the event; the partition key."),
        Column("kind", pa.string(), "Event kind name (NEW_TASK, TASK_STATUS_UPDATE, ...).",
               enum_name=True),
        _id("task_id", "Task of a task event."),
        _id("result_id", "Result of a result event."),
        _s("status", "New status name of the task or result."),
        _s("owner_id", "New owner task of a RESULT_OWNER_UPDATE."),
        _s("previous_owner_id", "Previous owner task of a RESULT_OWNER_UPDATE."),
        _s("payload_id", "Payload of a NEW_TASK."),
        _s("origin_task_id", "Submitting task of a NEW_TASK."),
        _list("expected_output_ids", "Expected outputs of a NEW_TASK; empty for other kinds."),
        _list("data_dependencies", "Data dependencies of a NEW_TASK; empty for other kinds."),
        _list("retry_of_ids", "Retried tasks of a NEW_TASK; empty for other kinds."),
        _list("parent_task_ids", "Parent tasks of a NEW_TASK; empty for other kinds."),
    ),
)

SESSIONS = TableSpec(
    "sessions",
    "Sessions as ListSessions reports them, one row per poll; the `sessions` view keeps the "
    "latest state of each session with its first and last sighting.",
    "session_id",
    "last_seen",
    (
        _s("session_id", "Session id; the partition key."),
        _s("status", "Session status name (RUNNING, CLOSED, ...)."),
        _list("partition_ids", "Partitions the session may use."),
        _s("default_partition", "Partition of the session's default task options."),
        _s("application_name", "Application of the session's default task options."),
        _seconds("max_duration_seconds", "Default task max_duration of the session.",
                 "max_duration", measured=False),
        Column("client_submission", pa.bool_(), "Whether clients may submit tasks."),
        Column("worker_submission", pa.bool_(), "Whether workers may submit tasks."),
        _t("created_at", "Server time the session was created."),
        _t("cancelled_at", "Server time the session was cancelled."),
        _t("closed_at", "Server time the session was closed."),
        _t("purged_at", "Server time the session was purged."),
        _t("deleted_at", "Server time the session was deleted."),
        _seconds("duration_seconds", "Server duration of the session.", "duration"),
        _t("first_seen", "Exporter clock of the first poll that saw the session.", OBSERVED),
        _t("last_seen", "Exporter clock of the last poll that saw the session.", OBSERVED),
    ),
)

class CountRow(NamedTuple):
    """One status of one count poll: a row of task_counts."""

    observed_at: int
    scope: str
    key: str
    status: str
    tasks: int  # not `count`, which a tuple already has


def explode_counts(polls: Sequence[StatusCounts]) -> list[CountRow]:
    """One row per status of each count poll."""
    return [CountRow(p.observed_at, p.scope, p.key, status, count)
            for p in polls for status, count in p.counts]


RESULTS = TableSpec(
    "results",
    "Results as ListResults reports them (ResultRaw); the `results` view keeps the most "
    "advanced row of each result_id.",
    "session_id",
    "observed_at",
    (
        _s("session_id", "Session of the result; the partition key."),
        _id("result_id", "Result id."),
        _s("name", "Result name."),
        _s("owner_task_id", "Task expected to produce the result."),
        _s("status", "Result status name (CREATED, COMPLETED, ABORTED, ...)."),
        _t("created_at", "Server time the result was created."),
        _t("completed_at", "Server time the result was completed."),
        Column("size", pa.int64(), "Size of the result data in bytes."),
        _s("created_by", "Task that created the result; empty when a client did."),
        _id("opaque_id", "Opaque id of the data in the object storage, as hex."),
        Column("manual_deletion", pa.bool_(), "Whether the client deletes the data itself."),
        _t("observed_at", "Exporter clock when the archive took the row.", OBSERVED),
    ),
)

TASK_COUNTS = TableSpec(
    "task_counts",
    "CountTasksByStatus polls: one row per scope, key and status at each poll.",
    "date",
    "observed_at",
    (
        _t("observed_at", "Exporter clock of the poll."),
        Column("date", pa.date32(), "UTC day of observed_at; the partition key.", DAY),
        _s("scope", "What was counted: partition or session."),
        _s("key", "The partition id or session id."),
        _s("status", "Task status name."),
        Column("count", pa.int64(), "Tasks in that status.", "tasks"),
    ),
    explode=explode_counts,
)

HEALTH = TableSpec(
    "health",
    "CheckHealth polls: one row per service at each poll.",
    "date",
    "observed_at",
    (
        _t("observed_at", "Exporter clock of the poll."),
        Column("date", pa.date32(), "UTC day of observed_at; the partition key.", DAY),
        _s("service", "Control-plane service (database, object, queue)."),
        _s("status", "Health status name (HEALTHY, DEGRADED, UNHEALTHY, UNSPECIFIED)."),
        _s("message", "Message of the health check."),
    ),
)

TABLES: tuple[TableSpec, ...] = (TASKS, EVENTS, SESSIONS, RESULTS, TASK_COUNTS, HEALTH)
BY_NAME: dict[str, TableSpec] = {spec.name: spec for spec in TABLES}


def spec(table: str) -> TableSpec:
    """The declaration of one table."""
    try:
        return BY_NAME[table]
    except KeyError:
        raise ValueError(f"unknown archive table {table!r}; known: {', '.join(BY_NAME)}") from None


def empty_table(table: str) -> pa.Table:
    """A table with no rows and the right columns (the view of a table nothing was written to)."""
    return spec(table).schema.empty_table()


# -- rendering --------------------------------------------------------------------------------


def render_text() -> str:
    """The schemas as plain text, one column a line (the golden snapshot)."""
    lines: list[str] = []
    for table in TABLES:
        lines.append(f"{table.name} (partitioned by {table.partition_key})")
        lines.extend(f"  {column.name}: {column.type}" for column in table.columns)
        lines.append("")
    return "\n".join(lines)


_INTRO = """\
# Archive

Generated from the declarations in `armonik_observe/archive/schema.py` (`render_markdown()`);
a test checks they agree, and `UPDATE_GOLDEN=1 pytest tests/test_archive_schema.py` regenerates.

The archive keeps the full history of tasks, events and polls as Parquet files (zstd) for
post-mortem analysis with DuckDB or Polars:

```
DIR/.armonik-observe-archive                        marker: JSON with the format version
DIR/.retired.json                                   segments retired by upkeep, with the time
DIR/<table>/session_id=<escaped id>/part-*.parquet  tasks, events, sessions, results
DIR/<table>/date=YYYY-MM-DD/part-*.parquet          task_counts, health (UTC day)
```

Segments are immutable and appear atomically (written as `*.parquet.tmp`, fsynced, renamed).
Every column is stored in the file, the partition key included; directory names percent-escape
the session id. Times are `timestamp[us, tz=UTC]`, durations are seconds as float64, statuses
are names. Unreadable segments are skipped with a warning. Row groups hold up to 131,072 rows;
ids are stored DELTA_LENGTH_BYTE_ARRAY, times DELTA_BINARY_PACKED, measured durations
BYTE_STREAM_SPLIT and everything else dictionary-encoded, with min/max statistics on scalar
columns but ids and messages (DuckDB and Polars skip row groups on times, sessions, statuses).
The exporter converts rows to Arrow (with pyarrow) in one thread while another writes the
previous flush's segments.

Read it with `armonik_observe.archive.open(DIR)`: `connect()` gives a DuckDB connection with one
view per table below, and `<table>_raw` for each (every row as written); `lazy(table)` gives the
same rows as a Polars LazyFrame.

- `tasks`: one row per task_id, the most advanced: an ended row over a non-ended one, then the
  latest ended_at, then the furthest status, then the latest observed_at, then the smallest
  (status, error, status_message, pod_hostname, owner_pod_id).
- `results`: one row per result_id: the furthest status, then the latest completed_at, then the
  latest observed_at.
- `sessions`: one row per session_id: the latest poll's state, with first_seen the earliest and
  last_seen the latest sighting.
- `events`, `task_counts`, `health`: every row as written.

Retention (`maintenance.apply_retention`) dates a partition by the newest value of its
observation column (observed_at, or last_seen for sessions) read from Parquet statistics, not by
file modification times, which copies and compaction reset.

Compaction (`maintenance.compact`: a partition's small segments merged into one that names them)
and retention never pull files from under a reader. What they supersede or drop is retired:
listed in `.retired.json` and left in place for a grace period (`grace` of `ArchiveUpkeep`,
`compact` and `apply_retention`; `serve --archive-grace`, an hour by default). A connection
opened before keeps answering with the same rows; one opened after skips retired segments, so no
row counts twice; upkeep deletes them once the grace is over. Past it, `query()` and `lazy()` of
an archive held open (`with archive.open(DIR) as a:`) raise one ArchiveError that says to reopen
the archive (its raw DuckDB connection raises DuckDB's IOException). A crash at any step loses
and duplicates nothing: a merged segment hides its inputs from the moment it appears, before the
ledger retires them, and files are deleted before their ledger entries.
"""


def render_markdown() -> str:
    """The archive reference, docs/archive.md."""
    lines = [_INTRO]
    for table in TABLES:
        lines += [
            f"## `{table.name}`",
            "",
            f"{table.doc} Partitioned by `{table.partition_key}`.",
            "",
            "| column | type | description |",
            "|---|---|---|",
        ]
        lines += [f"| `{c.name}` | `{c.type}` | {c.doc} |" for c in table.columns]
        lines.append("")
    return "\n".join(lines)

