"""The exporter's outputs besides /metrics, built from the settings in one place.

Each factory reads the settings and returns its sink, or None when that output is off. A sink
declares what it needs the collectors to read (`pipeline.Needs`) and reports its own figures
(`self_metrics`); nothing else in the exporter knows it. A new output is one more factory here
and its options in config.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from armonik_observe.archive.output import ArchiveOutput
from armonik_observe.config import ServeSettings
from armonik_observe.pipeline import Sink

SinkFactory = Callable[[ServeSettings], Sink | None]


def archive(settings: ServeSettings) -> Sink | None:
    """The Parquet archive, with --archive DIR."""
    if settings.archive is None:
        return None
    return ArchiveOutput(settings.archive, flush_interval=settings.archive_flush_interval,
                         retention=settings.archive_retention, grace=settings.archive_grace)


SINK_FACTORIES: tuple[SinkFactory, ...] = (archive,)


def build_sinks(settings: ServeSettings,
                factories: Sequence[SinkFactory] = SINK_FACTORIES) -> list[Sink]:
    """The sinks the settings turn on, in the factories' order."""
    return [sink for factory in factories if (sink := factory(settings)) is not None]
