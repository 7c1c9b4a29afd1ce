"""A quiet cluster shows 0, not "No data": series with known labels are exported from the start.

Prometheus's guidance for a metric whose label values are known in advance: export each series
at 0 before the first event, so rate(), sums and alerts see a 0 instead of an empty result.
"""

from __future__ import annotations

from typing import Any

from exporter_harness import exporter_for, sample, settle

from armonik_observe.collectors.tracker import DROP_REASONS
from armonik_observe.service import IN_FLIGHT_STATUSES, STUCK_REFRESH_S

# The simulator's default scenario: one partition, no session ever.
PARTITION = "default"


async def test_a_quiet_exporter_exports_zeros(manual_sim: Any) -> None:
    async with manual_sim() as (sim, _), exporter_for(sim) as exporter:
        await settle(exporter)
        await sim.advance(STUCK_REFRESH_S + 1)  # the stuck-task tally is refreshed this often
        await settle(exporter)
        assert sample(exporter, "armonik_up") == 1
        for reason in DROP_REASONS:
            assert sample(exporter, "armonik_observe_dropped_total", {"reason": reason}) == 0
        for state in ("connecting", "connected", "degraded"):
            assert sample(exporter, "armonik_observe_event_streams", {"state": state}) == 0
        for kind in ("new_task", "task_status_update"):
            assert sample(exporter, "armonik_observe_events_received_total", {"kind": kind}) == 0
        assert sample(exporter, "armonik_observe_stream_reconnects_total") == 0
        for collector in ("sessions", "health", "counts", "facts", "events"):
            labels = {"collector": collector}
            assert sample(exporter, "armonik_observe_collector_errors_total", labels) == 0
        for status in IN_FLIGHT_STATUSES:
            labels = {"partition": PARTITION, "status": status}
            assert sample(exporter, "armonik_tasks_stuck", labels) == 0
        assert {"PENDING", "SUBMITTED", "PROCESSING"} <= set(IN_FLIGHT_STATUSES)
        busy = {"partition": PARTITION}
        assert sample(exporter, "armonik_partition_busy_seconds_total", busy) == 0
