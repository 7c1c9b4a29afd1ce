"""Curves over time, per partition: throughput, backlog and concurrency on a regular grid.

- throughput: tasks that ended in [t, t + interval), and that count per second;
- backlog: tasks submitted and not yet started at t (a task cancelled before it started leaves
  the backlog when it ends);
- concurrency: tasks started and not yet ended at t (processing; a task still running is counted
  until the end of the grid).

Counts come from sorted event times (numpy searchsorted), exact at each grid point: a task
submitted at t is in the backlog at t, one started at t is not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

Micros = npt.NDArray[np.int64]
DEFAULT_POINTS = 200
CURVE_SCHEMA = pl.Schema({
    "partition_id": pl.String(), "time": pl.Datetime("us", "UTC"), "ended": pl.Int64(),
    "throughput": pl.Float64(), "backlog": pl.Int64(), "concurrency": pl.Int64()})
_NICE = (1, 2, 5)


def nice_interval(span_seconds: float, points: int = DEFAULT_POINTS) -> float:
    """The smallest 1, 2 or 5 x 10^k seconds (at least 1 ms) that covers `span_seconds` in at
    most `points` intervals."""
    wanted = max(span_seconds / max(points, 1), 0.001)
    exponent = math.floor(math.log10(wanted))
    for base in (*_NICE, 10):
        step = base * 10.0 ** exponent
        if step >= wanted * (1 - 1e-12):
            return round(step, 6)
    return 10.0 ** (exponent + 1)


@dataclass(frozen=True)
class Grid:
    """Regular grid points from `start_us`, every `interval_us`, `points` of them."""

    start_us: int
    interval_us: int
    points: int

    @property
    def times_us(self) -> Micros:
        """The grid points, in epoch microseconds."""
        return self.start_us + self.interval_us * np.arange(self.points, dtype=np.int64)


def grid_for(tasks: pl.LazyFrame, interval: float | None = None,
             points: int = DEFAULT_POINTS) -> Grid | None:
    """A grid from the first creation to past the last end; None when no task ended."""
    first, last = tasks.select(_us("created_at").min(), _us("ended_at").max()).collect().row(0)
    if first is None or last is None:
        return None
    span = max(last - first, 1)
    step = round((interval or nice_interval(span / 1e6, points)) * 1e6)
    return Grid(first, step, span // step + 2)


def _us(column: str) -> pl.Expr:
    return pl.col(column).dt.epoch("us")


def _sorted(values: pl.Series) -> Micros:
    return np.sort(values.drop_nulls().to_numpy().astype(np.int64))


def _count_at(sorted_times: Micros, at: Micros) -> Micros:
    """How many times are at or before each of `at`."""
    return np.searchsorted(sorted_times, at, side="right").astype(np.int64)


def partition_curves(frame: pl.DataFrame, grid: Grid) -> dict[str, Micros]:
    """The three curves of one partition's tasks (a frame of epoch-us columns) on the grid."""
    at = grid.times_us
    ends = _sorted(frame["ended_at"])
    edges = np.append(at, at[-1] + grid.interval_us)
    ended = np.diff(np.searchsorted(ends, edges, side="left")).astype(np.int64)
    submitted = frame.filter(pl.col("submitted_at").is_not_null())
    left_backlog = submitted.select(pl.coalesce("started_at", "ended_at")).to_series()
    started = frame.filter(pl.col("started_at").is_not_null())
    backlog = _count_at(_sorted(submitted["submitted_at"]), at) - _count_at(
        _sorted(left_backlog), at)
    running = _count_at(_sorted(started["started_at"]), at) - _count_at(
        _sorted(started["ended_at"]), at)
    return {"ended": ended, "backlog": backlog, "concurrency": running}


def curves(tasks: pl.LazyFrame, interval: float | None = None,
           points: int = DEFAULT_POINTS) -> pl.DataFrame:
    """One row per partition and grid point: partition_id, time, ended (in the interval from
    time), throughput (ended per second), backlog, concurrency. Empty when no task ended."""
    grid = grid_for(tasks, interval, points)
    if grid is None:
        return pl.DataFrame(schema=CURVE_SCHEMA)
    columns = ("submitted_at", "started_at", "ended_at")
    frame = tasks.select("partition_id", *(_us(c).alias(c) for c in columns)).collect()
    parts = []
    for (partition,), group in sorted(frame.group_by("partition_id"), key=lambda g: str(g[0])):
        values = partition_curves(group, grid)
        parts.append(pl.DataFrame({
            "partition_id": [partition] * grid.points,
            "time": grid.times_us,
            "ended": values["ended"],
            "throughput": values["ended"] / (grid.interval_us / 1e6),
            "backlog": values["backlog"],
            "concurrency": values["concurrency"],
        }))
    return pl.concat(parts).with_columns(
        pl.col("time").cast(pl.Datetime("us", "UTC"))).cast(CURVE_SCHEMA)

