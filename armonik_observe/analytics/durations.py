"""Duration statistics: the server's three durations and the five phases of a task, in seconds,
summarised per group.

Each measure is defined where both of its ends are set; a task that never reached a phase (a
cancelled task never started) counts in no statistic of it. Every attempt counts (a retried
attempt is a task of its own): group by `status` to tell them apart. Percentiles interpolate
linearly between the two nearest ranks, numpy's default: p = x[k] + (x[k+1] - x[k]) * f where
k + f = q * (n - 1). `std` is the sample standard deviation (n - 1 degrees of freedom, as Polars,
DuckDB and pandas compute it); null for a single value.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

# The columns a duration statistic may be grouped by.
GROUP_COLUMNS = ("session_id", "partition_id", "application_name", "status", "pod_hostname")
STATISTICS = ("count", "mean", "std", "min", "p50", "p90", "p95", "p99", "max")
QUANTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}


def _micros_to_seconds(micros: pl.Series) -> pl.Series:
    # A true division, as numpy's: Polars divides by a constant by multiplying with its
    # inverse, one ulp off for a third of the values, and the archive's *_seconds are divided.
    return pl.Series(micros.to_numpy() / 1_000_000, dtype=pl.Float64, nan_to_null=True)


def to_seconds(micros: pl.Expr) -> pl.Expr:
    """Integer microseconds to seconds, correctly rounded (in a select or with_columns, not in
    an aggregation: it maps the whole column)."""
    return micros.map_batches(_micros_to_seconds, return_dtype=pl.Float64)


def seconds_between(start: str, end: str) -> pl.Expr:
    """end - start in seconds (exact microseconds divided by 10^6); null unless both are set."""
    return to_seconds((pl.col(end) - pl.col(start)).dt.total_microseconds())


# The phases a task goes through, in order, each from one timestamp to the next.
PHASES: dict[str, tuple[str, str]] = {
    "queue_wait": ("submitted_at", "received_at"),
    "acquisition": ("received_at", "acquired_at"),
    "fetch": ("acquired_at", "fetched_at"),
    "processing": ("started_at", "processed_at"),
    "finalize": ("processed_at", "ended_at"),
}

# Every measure by name: the server's durations, then the phases.
MEASURES: dict[str, pl.Expr] = {
    "creation_to_end": pl.col("creation_to_end_seconds"),
    "processing_to_end": pl.col("processing_to_end_seconds"),
    "received_to_end": pl.col("received_to_end_seconds"),
    **{name: seconds_between(*ends) for name, ends in PHASES.items()},
}


def check_columns(by: Sequence[str]) -> None:
    """ValueError for a grouping column that is not one of GROUP_COLUMNS."""
    unknown = [column for column in by if column not in GROUP_COLUMNS]
    if unknown:
        raise ValueError(f"cannot group durations by {unknown[0]!r}; use any of "
                         f"{', '.join(GROUP_COLUMNS)}")


def measures(tasks: pl.LazyFrame, by: Sequence[str] = (),
             names: Sequence[str] = tuple(MEASURES)) -> pl.LazyFrame:
    """One row per task: the grouping columns, then each measure in seconds (null when unset)."""
    return tasks.select(*by, *(MEASURES[name].alias(name) for name in names))


def _aggregations(value: pl.Expr) -> list[pl.Expr]:
    return [
        value.count().alias("count"),
        value.mean().alias("mean"),
        value.std().alias("std"),
        value.min().alias("min"),
        *(value.quantile(q, interpolation="linear").alias(name) for name, q in QUANTILES.items()),
        value.max().alias("max"),
    ]


def duration_stats(tasks: pl.LazyFrame, by: Sequence[str] = (),
                   names: Sequence[str] = tuple(MEASURES)) -> pl.LazyFrame:
    """One row per group and measure: the `by` columns, `measure`, then STATISTICS (seconds;
    count is the tasks where the measure is set). Measures no task has are left out."""
    check_columns(by)
    long = (measures(tasks, by, names)
            .unpivot(index=list(by), variable_name="measure", value_name="value")
            .drop_nulls("value"))
    return (long.group_by(*by, "measure").agg(_aggregations(pl.col("value")))
            .sort(*by, measure_rank(), nulls_last=True))


def measure_rank() -> pl.Expr:
    """The rank of the `measure` column in MEASURES, to sort by it."""
    return pl.col("measure").replace_strict({name: rank for rank, name in enumerate(MEASURES)},
                                            return_dtype=pl.Int32)
