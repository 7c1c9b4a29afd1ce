"""Where task facts start counting: the exporter's own start, never its first successful call.

The rule: every task whose server `ended_at` is at or after T0 - backfill - clock_skew is counted
exactly once, where T0 is when the exporter started, on its own clock. `clock_skew` allows for a
server clock behind the exporter's. The rule holds whatever the control plane does at start-up
(down, refusing, slow): nothing depends on when it first answers.

With an archive, T0 is the first start recorded in it, so a restart (even one before the control
plane ever answered) keeps the rule, and reading resumes at the archive's watermark minus the
overlap, for ends written late; the attempts the archive holds in that overlap were counted by
the run before, so a restart does not count them again (a Prometheus `increase()` across the
restart would). Without one, a restart starts over, as Prometheus counters do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

MICROS = 1_000_000


@dataclass(frozen=True)
class FactsOrigin:
    """Nothing that ended before `floor_us` counts; `watermark_us` is the newest end already
    read (kept by an archive), when there is one, and `counted` the attempts already counted
    near it (id -> ended_at)."""

    floor_us: int
    watermark_us: int | None = None
    counted: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def at(cls, started_at_us: int, backfill_s: float, clock_skew_s: float,
           watermark_us: int | None = None,
           counted: Mapping[str, int] | None = None) -> FactsOrigin:
        """The origin of an exporter started at `started_at_us` (T0)."""
        floor = started_at_us - int((backfill_s + clock_skew_s) * MICROS)
        return cls(floor, watermark_us, counted or {})

    @property
    def resumed(self) -> bool:
        """True when reading resumes from an archive's watermark."""
        return self.watermark_us is not None
