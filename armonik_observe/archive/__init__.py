"""The archive: every task, event and poll kept as Parquet for post-mortem analysis.

Write with `ArchiveSink` (a pipeline sink); read with `open(DIR)`, which gives DuckDB views and
Polars frames; compact, expire and export with `armonik_observe.archive.maintenance`.
"""

from armonik_observe.archive.layout import ArchiveError
from armonik_observe.archive.reader import Archive, TableStats, open
from armonik_observe.archive.writer import ArchiveSink, WriterStats
from armonik_observe.model import ResultRecord

__all__ = [
    "Archive",
    "ArchiveError",
    "ArchiveSink",
    "ResultRecord",
    "TableStats",
    "WriterStats",
    "open",
]
