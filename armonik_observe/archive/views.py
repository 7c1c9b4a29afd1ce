"""The rule of each view over the raw rows, written twice side by side: DuckDB SQL and Polars.

Rows arrive at least once (replays, restarts, overlapping fact windows), so each entity view keeps
one row per id, the most advanced: see docs/archive.md for the orders. Both engines must pick the
same row; a test compares them.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from armonik_observe.model import TASK_STATUS_RANK

# How far along its life cycle each status is; unknown statuses rank below every known one.
RANKS: dict[str, dict[str, int]] = {
    "task": {status.name: rank for status, rank in TASK_STATUS_RANK.items()},
    "result": {"UNSPECIFIED": 0, "NOTFOUND": 0, "CREATED": 1, "COMPLETED": 2, "ABORTED": 2,
               "DELETED": 3},
    "session": {"UNSPECIFIED": 0, "RUNNING": 1, "PAUSED": 1, "CANCELLED": 2, "CLOSED": 2,
                "PURGED": 3, "DELETED": 4},
}

# Tables read raw under `<name>_raw` and shown through one of the views below.
DEDUPLICATED = ("tasks", "results", "sessions")

_TASKS_SQL = """
CREATE OR REPLACE TEMP VIEW tasks AS
SELECT t.* FROM tasks_raw AS t
LEFT JOIN {task_ranks} AS r(status, rank) ON r.status = t.status
QUALIFY row_number() OVER (
    PARTITION BY t.task_id
    ORDER BY t.ended_at IS NULL, t.ended_at DESC NULLS LAST, coalesce(r.rank, -1) DESC,
             t.observed_at DESC NULLS LAST, t.status, t.error, t.status_message, t.pod_hostname,
             t.owner_pod_id
) = 1
"""

_RESULTS_SQL = """
CREATE OR REPLACE TEMP VIEW results AS
SELECT t.* FROM results_raw AS t
LEFT JOIN {result_ranks} AS r(status, rank) ON r.status = t.status
QUALIFY row_number() OVER (
    PARTITION BY t.result_id
    ORDER BY coalesce(r.rank, -1) DESC, t.completed_at DESC NULLS LAST,
             t.observed_at DESC NULLS LAST, t.status, t.name, t.owner_task_id
) = 1
"""

_SESSIONS_SQL = """
CREATE OR REPLACE TEMP VIEW sessions AS
WITH seen AS (
    SELECT session_id, min(first_seen) AS first_seen, max(last_seen) AS last_seen
    FROM sessions_raw GROUP BY session_id
), latest AS (
    SELECT t.* FROM sessions_raw AS t
    LEFT JOIN {session_ranks} AS r(status, rank) ON r.status = t.status
    QUALIFY row_number() OVER (
        PARTITION BY t.session_id
        ORDER BY t.last_seen DESC NULLS LAST, coalesce(r.rank, -1) DESC, t.status
    ) = 1
)
SELECT latest.* REPLACE (seen.first_seen AS first_seen, seen.last_seen AS last_seen)
FROM latest JOIN seen USING (session_id)
"""

_PLAIN_SQL = "CREATE OR REPLACE TEMP VIEW {table} AS SELECT * FROM {table}_raw"
_VIEW_SQL = {"tasks": _TASKS_SQL, "results": _RESULTS_SQL, "sessions": _SESSIONS_SQL}


def _ranks_sql(entity: str) -> str:
    """The status ranks of one entity as an inline VALUES list: no helper object is left in
    the connection for SHOW TABLES to list."""
    rows = ", ".join(f"('{status}', {rank})" for status, rank in RANKS[entity].items())
    return f"(VALUES {rows})"


def install(connection: Any, tables: tuple[str, ...]) -> None:
    """Create each table's view over its `<table>_raw` relation in a DuckDB connection."""
    ranks = {f"{entity}_ranks": _ranks_sql(entity) for entity in RANKS}
    for table in tables:
        # Table names and statuses come from declarations in code, never from input.
        sql = _VIEW_SQL.get(table)
        connection.execute(sql.format(**ranks) if sql else _PLAIN_SQL.format(table=table))


# -- the same rules in Polars ---------------------------------------------------------------


def _ranked(raw: pl.LazyFrame, entity: str) -> pl.LazyFrame:
    ranks = pl.LazyFrame(
        {"status": list(RANKS[entity]), "_rank": list(RANKS[entity].values())},
        schema={"status": pl.String, "_rank": pl.Int32},
    )
    return raw.join(ranks, on="status", how="left").with_columns(pl.col("_rank").fill_null(-1))


def _first(frame: pl.LazyFrame, key: str, order: list[tuple[pl.Expr, bool]]) -> pl.LazyFrame:
    exprs = [expr for expr, _ in order]
    descending = [desc for _, desc in order]
    return (frame.sort(exprs, descending=descending, nulls_last=True, maintain_order=True)
            .unique(key, keep="first", maintain_order=True).drop("_rank"))


def tasks(raw: pl.LazyFrame) -> pl.LazyFrame:
    """One row per task_id, the most advanced (the `tasks` view)."""
    col = pl.col
    return _first(_ranked(raw, "task"), "task_id", [
        (col("ended_at").is_not_null(), True), (col("ended_at"), True), (col("_rank"), True),
        (col("observed_at"), True), (col("status"), False), (col("error"), False),
        (col("status_message"), False), (col("pod_hostname"), False),
        (col("owner_pod_id"), False),
    ])


def results(raw: pl.LazyFrame) -> pl.LazyFrame:
    """One row per result_id, the most advanced (the `results` view)."""
    col = pl.col
    return _first(_ranked(raw, "result"), "result_id", [
        (col("_rank"), True), (col("completed_at"), True), (col("observed_at"), True),
        (col("status"), False), (col("name"), False), (col("owner_task_id"), False),
    ])


def sessions(raw: pl.LazyFrame) -> pl.LazyFrame:
    """One row per session_id, its latest state and its first and last sighting."""
    col = pl.col
    seen = raw.group_by("session_id").agg(col("first_seen").min(), col("last_seen").max())
    latest = _first(_ranked(raw, "session"), "session_id", [
        (col("last_seen"), True), (col("_rank"), True), (col("status"), False),
    ])
    columns = raw.collect_schema().names()
    return (latest.drop("first_seen", "last_seen")
            .join(seen, on="session_id", how="left").select(columns))


LAZY_VIEWS = {"tasks": tasks, "results": results, "sessions": sessions}
