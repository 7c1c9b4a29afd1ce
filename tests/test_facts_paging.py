"""The task facts poller pages a long history: every end once, and a bounded memory of ids."""

from __future__ import annotations

import random
from typing import Any

from armonik_observe.collectors.channel import ChannelFactory, parse_endpoint
from armonik_observe.collectors.facts import TaskFactsPoller
from armonik_observe.collectors.origin import FactsOrigin
from armonik_observe.collectors.retry import Backoff, Connection
from armonik_observe.model import TERMINAL_TASK_STATUSES
from armonik_observe.pipeline import Batch
from armonik_observe.simulator.scenario import scenario_from_dict

SPREAD = {  # 600 tasks ending 4 a second over 150 s
    "name": "spread",
    "partitions": [{"id": "default", "pods": 4}],
    "sessions": [{"name": "spread", "partition": "default",
                  "graph": {"kind": "bag", "tasks": 600}, "profile": {"processing": 1.0}}],
}


async def test_a_catch_up_reads_every_end_once_and_keeps_only_the_overlap_of_ids(
    manual_sim: Any,
) -> None:
    async with manual_sim(scenario_from_dict(SPREAD)) as (sim, _):
        await sim.advance(400)
        truth = {t.task_id for t in sim.true_tasks() if t.status in TERMINAL_TASK_STATUSES}
        assert len(truth) == 600
        published: list[str] = []
        peak_ids = 0

        def publish(batch: Batch) -> None:
            nonlocal peak_ids
            published.extend(batch.facts["task_id"])
            peak_ids = max(peak_ids, poller.seen_ids())

        connection = Connection(ChannelFactory(parse_endpoint(f"http://{sim.target}")),
                                backoff=Backoff(initial=0.1, jitter=0.0), rng=random.Random(1))
        poller = TaskFactsPoller(connection=connection, publish=publish, interval=3600,
                                 overlap_us=5_000_000, page_size=20,
                                 origin=FactsOrigin(floor_us=0))
        try:
            await poller.poll_once()
            await poller.poll_once()  # the overlap is re-read, and dropped
        finally:
            await connection.close()
        assert sorted(published) == sorted(truth)
        # The overlap holds some 20 ends (4 a second for 5 s); pruning as it pages keeps the
        # memory near it and a page, never the history's 600.
        assert peak_ids <= 2 * 24 + 2 * 20, peak_ids
        assert poller.seen_ids() <= 24
