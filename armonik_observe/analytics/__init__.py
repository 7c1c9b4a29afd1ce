"""Post-mortem analytics: functions over Polars LazyFrames of the archive's `tasks` schema, fed
by the archive (`from_archive`) or a live control plane (`live.from_live`), one module per
concept (durations, curves, pods, stragglers, graph, compare); docs/analytics.md defines every
answer. The HTML report (`analytics.report`) is imported on its own: it loads Plotly.
"""

from armonik_observe.analytics.analysis import Options, SessionAnalysis, analyses
from armonik_observe.analytics.durations import MEASURES, duration_stats
from armonik_observe.analytics.frames import AnalyticsError, Selection, TaskFrames, from_archive

__all__ = [
    "MEASURES",
    "AnalyticsError",
    "Options",
    "Selection",
    "SessionAnalysis",
    "TaskFrames",
    "analyses",
    "duration_stats",
    "from_archive",
]
