"""Reading an archive: DuckDB views and Polars frames over the readable segments.

Each connection sees the segments that existed when it was made: a snapshot, never a lock, so
readers never wait on the writer (which holds no database file open) and the writer never waits
on readers. Segments that compaction or retention retire stay readable for a grace period
(retired.py), so a snapshot keeps answering that long; after it, `query` and `lazy` say to
reopen the archive.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import polars as pl

from armonik_observe.archive import layout, views
from armonik_observe.archive.layout import ArchiveError
from armonik_observe.archive.schema import TABLES, TableSpec, empty_table, spec
from armonik_observe.archive.segments import SegmentIndex

# The segments a connection reads, by table.
Snapshot = dict[str, list[Path]]


@dataclass(frozen=True, slots=True)
class TableStats:
    """Size of one table on disk: readable segments, rows as written (duplicates included)."""

    files: int
    rows: int
    bytes: int


def open(directory: Path | str) -> Archive:
    """Open the archive at `directory` for reading; ArchiveError if it is not one."""
    path = Path(directory)
    layout.check_marker(path)
    return Archive(path)


class Archive:
    """An archive directory, read through DuckDB views or Polars lazy frames."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._index = SegmentIndex(directory)
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._snapshot: Snapshot | None = None  # the files the `with` block's connection reads

    @property
    def warnings(self) -> list[str]:
        """Problems met so far: each skipped segment, by name."""
        return self._index.warnings

    def files(self, table: str) -> list[Path]:
        """The readable segments of a table, as of now."""
        return [segment.path for segment in self._index.segments(spec(table))]

    def _listing(self) -> Snapshot:
        return {table.name: self.files(table.name) for table in TABLES}

    # -- DuckDB ----------------------------------------------------------------------------

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A new in-memory DuckDB connection with every view; the caller closes it."""
        return self._connect(self._listing())

    def _connect(self, snapshot: Snapshot) -> duckdb.DuckDBPyConnection:
        connection = duckdb.connect(":memory:")
        try:
            self._install(connection, snapshot)
        except BaseException:
            connection.close()
            raise
        return connection

    def install(self, connection: duckdb.DuckDBPyConnection) -> None:
        """Create the `<table>_raw` relations and the views in a DuckDB connection."""
        self._install(connection, self._listing())

    def _install(self, connection: duckdb.DuckDBPyConnection, snapshot: Snapshot) -> None:
        connection.execute("SET TimeZone = 'UTC'")
        for table in TABLES:
            self._install_raw(connection, table, snapshot[table.name])
        views.install(connection, tuple(table.name for table in TABLES))

    @staticmethod
    def _install_raw(connection: duckdb.DuckDBPyConnection, table: TableSpec,
                     paths: list[Path]) -> None:
        name = f"{table.name}_raw"
        files = [str(path) for path in paths]
        if not files:
            connection.register(name, empty_table(table.name))
            return
        # The file list goes in as data, through the relation API: no SQL is built from paths.
        relation = connection.read_parquet(files, hive_partitioning=True, union_by_name=True)
        # The declared columns in their declared order, whatever the segments' versions: the
        # columns added since an older segment was written read null.
        present = set(relation.columns)
        types = dict(zip(table.schema.names,
                         connection.from_arrow(empty_table(table.name)).types, strict=True))
        columns = ", ".join(f'"{c}"' if c in present else f'CAST(NULL AS {types[c]}) AS "{c}"'
                            for c in table.schema.names)
        relation.select(columns).to_view(name)

    def __enter__(self) -> Archive:
        """Open one connection, and a snapshot that `query` and `lazy` read until the exit."""
        if self._connection is not None:
            raise ArchiveError(f"the archive at {self.directory} is already open")
        snapshot = self._listing()
        self._connection = self._connect(snapshot)
        self._snapshot = snapshot
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        connection, self._connection, self._snapshot = self._connection, None, None
        if connection is not None:
            connection.close()

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The connection owned by a `with` block (DuckDB's own errors: see `query`)."""
        if self._connection is None:
            raise ArchiveError("Archive.connection exists only inside `with archive:`; "
                               "use connect() otherwise")
        return self._connection

    def query(self, sql: str, parameters: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one parameterised query and return its rows.

        ArchiveError when the snapshot it reads lost segments that upkeep deleted once their
        grace period was over: reopen the archive.
        """
        with self._borrowed() as (connection, snapshot):
            try:
                return connection.execute(sql, parameters or []).fetchall()
            except duckdb.IOException:
                self._check(itertools.chain.from_iterable(snapshot.values()))
                raise

    @contextmanager
    def _borrowed(self) -> Iterator[tuple[duckdb.DuckDBPyConnection, Snapshot]]:
        if self._connection is not None and self._snapshot is not None:
            yield self._connection, self._snapshot
            return
        snapshot = self._listing()
        connection = self._connect(snapshot)
        try:
            yield connection, snapshot
        finally:
            connection.close()

    def _check(self, paths: Iterable[Path]) -> None:
        """Raise the one error that says to reopen when some of `paths` were deleted."""
        missing = sum(1 for path in paths if not path.exists())
        if missing:
            raise ArchiveError(
                f"{self.directory}: {missing} segment(s) this connection reads were deleted "
                "after compaction or retention retired them (their grace period is over); "
                "reopen the archive") from None

    # -- Polars and summaries --------------------------------------------------------------

    def lazy(self, table: str, *, raw: bool = False) -> pl.LazyFrame:
        """A Polars LazyFrame of a table; entity tables deduplicated as their view unless raw.

        Inside `with`, of the snapshot (ArchiveError once it lost segments: reopen); otherwise
        of the segments of now.
        """
        if self._snapshot is None:
            paths = self.files(table)
        else:
            paths = self._snapshot[spec(table).name]
            self._check(paths)
        files = [str(path) for path in paths]
        schema = pl.DataFrame(empty_table(table)).schema
        if files:
            # Columns added since a segment's format version read null; the partition column
            # is in every file, so none comes from the path.
            frame = pl.scan_parquet(files, schema=schema, hive_partitioning=False,
                                    missing_columns="insert", extra_columns="ignore")
        else:
            frame = pl.LazyFrame(schema=schema)
        rule = views.LAZY_VIEWS.get(table)
        return frame if raw or rule is None else rule(frame)

    def watermark_us(self) -> int | None:
        """Where task facts resume after a restart, in epoch microseconds; None if none ended.

        The writer's checkpoint when there is one: a crash between two segments of one flush
        leaves later ends on disk than some unwritten ones, so the newest end would skip those.
        """
        rows = self.query("SELECT epoch_us(min(ended_at)), epoch_us(max(ended_at)) FROM tasks_raw")
        oldest, newest = rows[0] if rows else (None, None)
        if newest is None:
            return None
        checkpoint = layout.read_checkpoint(self.directory)
        # No checkpoint yet (a crash during the first flush): re-read it all; duplicates are
        # harmless, the views keep one row per task.
        return int(oldest) if checkpoint is None else min(int(newest), checkpoint)

    def ended_since(self, since_us: int) -> dict[str, int]:
        """Task attempts archived with an end at or after `since_us`: id -> ended_at (micros)."""
        rows = self.query("SELECT task_id, epoch_us(ended_at) FROM tasks_raw "
                          "WHERE epoch_us(ended_at) >= ?", [since_us])
        return {task_id: int(ended) for task_id, ended in rows}

    def stats(self) -> dict[str, TableStats]:
        """Files, rows and bytes per table, from the segments' metadata (no data is read)."""
        result: dict[str, TableStats] = {}
        for table in TABLES:
            found = self._index.segments(table)
            result[table.name] = TableStats(len(found), sum(s.rows for s in found),
                                            sum(s.size for s in found))
        return result


@dataclass(frozen=True)
class ResumePoint:
    """Where an exporter takes over an archive: the first start recorded in it, its task-facts
    watermark, and the attempts archived within the overlap re-read below that watermark."""

    first_start_us: int
    watermark_us: int | None
    archived: Mapping[str, int]  # task id -> ended_at: already counted, never again


def resume_point(directory: Path, started_at_us: int, overlap_us: int) -> ResumePoint:
    """Where an exporter starting at `started_at_us` takes over the archive (recorded as the
    first start if none was; blocking I/O)."""
    first_start = layout.keep_first_start(directory, started_at_us)
    archive = open(directory)
    watermark = archive.watermark_us()
    archived = {} if watermark is None else archive.ended_since(watermark - overlap_us)
    return ResumePoint(first_start, watermark, archived)
