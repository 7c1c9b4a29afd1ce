"""The exporter: collectors, pipeline, Prometheus sink and HTTP server, with one life cycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry

from armonik_observe import __version__
from armonik_observe.archive.reader import resume_point
from armonik_observe.archive.upkeep import ArchiveUpkeep
from armonik_observe.archive.writer import ArchiveSink
from armonik_observe.collectors.channel import ChannelFactory
from armonik_observe.collectors.events import ALL_KINDS, TASK_KINDS, EventStreams, StreamLagSink
from armonik_observe.collectors.facts import TaskFactsPoller
from armonik_observe.collectors.origin import FactsOrigin
from armonik_observe.collectors.platform import CountsPoller, HealthPoller
from armonik_observe.collectors.poller import Poller
from armonik_observe.collectors.results import ResultsSweeper
from armonik_observe.collectors.retry import Backoff, Connection
from armonik_observe.collectors.sessions import SessionDiscovery
from armonik_observe.collectors.tracker import Budget
from armonik_observe.config import ServeSettings
from armonik_observe.exporters.http import MetricsHttpServer, Readiness
from armonik_observe.exporters.prometheus import ArchiveStatus, PrometheusSink, SelfStatus
from armonik_observe.lifecycle import AsyncService
from armonik_observe.pipeline import Pipeline, Sink

log = logging.getLogger(__name__)
MICROS = 1_000_000
# Counting stuck tasks walks every tracked task: do it at most this often.
STUCK_REFRESH_S = 10.0
RESWEEP_AFTER_RESTART_US = 3600 * MICROS


class Exporter(AsyncService):
    """Watches one control plane and serves what it sees to Prometheus."""

    def __init__(
        self,
        settings: ServeSettings,
        *,
        registry: CollectorRegistry | None = None,
        extra_sinks: Sequence[Sink] = (),
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
        stop_timeout: float = 10.0,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._stop_timeout = stop_timeout
        self.registry = registry or CollectorRegistry()
        self.sink = PrometheusSink(
            registry=self.registry, up=self.up, self_status=self.self_status,
            version=__version__, core_compat=settings.core_compat,
        )
        self._extra_sinks = list(extra_sinks)
        self.archive: ArchiveSink | None = None
        self.upkeep: ArchiveUpkeep | None = None
        if settings.archive is not None:
            self.archive = ArchiveSink(settings.archive,
                                       flush_interval=settings.archive_flush_interval)
            self.upkeep = ArchiveUpkeep(settings.archive, retention=settings.archive_retention)
            self._extra_sinks.append(self.archive)
        self.pipeline = Pipeline([])
        self.connection = Connection(
            ChannelFactory(settings.endpoint, settings.tls),
            backoff=backoff, observer=self.sink.observe_rpc,
        )
        self._build_collectors()
        self.http = MetricsHttpServer(
            registry=self.registry, listen=settings.listen, status=self.status,
            readiness=self.readiness, version=__version__, render=self.sink.render,
        )
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stuck: tuple[float, dict[tuple[str, str], int]] = (-STUCK_REFRESH_S, {})

    def _build_collectors(self) -> None:
        settings, publish, connection = self.settings, self.pipeline.publish, self.connection
        archiving = settings.archive is not None
        self.budget = Budget(limit=settings.max_tracked_tasks)
        self.streams = EventStreams(
            connection=connection, publish=publish, budget=self.budget, clock=self._clock,
            max_lag=settings.max_event_lag, kinds=ALL_KINDS if archiving else TASK_KINDS,
        )
        self.pipeline.sinks = [self.sink, StreamLagSink(self.streams), *self._extra_sinks]
        self.discovery = SessionDiscovery(
            connection=connection, publish=publish, interval=settings.session_interval,
            max_followed=settings.max_followed_sessions, on_followed=self.streams.follow,
        )
        self.counts = CountsPoller(
            connection=connection, publish=publish, interval=settings.count_interval,
            followed=self.discovery.followed_ids, clock=self._clock,
        )
        self.health = HealthPoller(
            connection=connection, publish=publish, interval=settings.health_interval,
            clock=self._clock,
        )
        self.facts = TaskFactsPoller(
            connection=connection, publish=publish, interval=settings.facts_interval,
            overlap_us=int(settings.facts_overlap * MICROS),
            detailed=archiving,  # the archive keeps the lists only ListTasksDetailed carries
        )
        self.pollers: list[Poller] = [self.discovery, self.health, self.counts, self.facts]
        if archiving:
            self.pollers.append(ResultsSweeper(
                connection=connection, publish=publish, interval=settings.session_interval,
                sessions=lambda: list(self.sink.state.sessions.values()),
                start_point=self._results_start_point,
            ))

    def _results_start_point(self) -> int | None:
        """Sessions that ended from the task facts' floor on get their results swept; after a
        restart, only from an hour before the archive's watermark (the sessions that ended
        before the last run could sweep them)."""
        origin = self.facts.origin
        if origin is None:
            return None
        if origin.watermark_us is None:
            return origin.floor_us
        return max(origin.floor_us, origin.watermark_us - RESWEEP_AFTER_RESTART_US)

    def _facts_origin(self, started_at_us: int) -> FactsOrigin:
        """Where the task facts start counting (reads the archive: call it off the loop)."""
        settings = self.settings
        if settings.archive is None:
            return FactsOrigin.at(started_at_us, settings.backfill, settings.clock_skew)
        first_start, watermark = resume_point(settings.archive, started_at_us)
        return FactsOrigin.at(first_start, settings.backfill, settings.clock_skew, watermark)

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Serve HTTP, then start polling and streaming (the control plane may be down)."""
        started_at_us = int(self._clock() * MICROS)
        await self.pipeline.start()
        self.facts.place(await asyncio.to_thread(self._facts_origin, started_at_us))
        await self.http.start()
        self._tasks = [
            asyncio.create_task(poller.run(self._stop), name=f"poll-{poller.name}")
            for poller in self.pollers
        ]
        self._tasks.append(asyncio.create_task(self.streams.run(self._stop), name="streams"))
        if self.upkeep is not None:
            self._tasks.append(asyncio.create_task(self.upkeep.run(self._stop), name="upkeep"))
        log.info("serving metrics on %s/metrics for %s", self.http.url,
                 self.settings.endpoint.url)

    async def stop(self) -> None:
        """Stop every collector, flush the sinks, close the server; idempotent and bounded."""
        if self._stop.is_set():
            return
        self._stop.set()
        tasks, self._tasks = self._tasks, []
        try:
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True),
                                   self._stop_timeout)
        except TimeoutError:
            for task in tasks:
                task.cancel()
            log.error("collectors did not stop within %.1fs", self._stop_timeout)
        await self.pipeline.stop()
        await self.http.stop()
        with contextlib.suppress(Exception):
            await self.connection.close()

    # -- status -------------------------------------------------------------------------------

    def up(self) -> bool:
        """True when the control plane answered the last polls."""
        return bool(self.connection.up) and all(p.ok is not False for p in self.pollers)

    def readiness(self) -> Readiness:
        """Ready only when the last polls succeeded and every followed session's stream is up."""
        reasons = [f"last {p.name} poll failed" for p in self.pollers if p.ok is False]
        reasons += [f"{p.name} has not polled yet" for p in self.pollers if p.ok is None]
        down = [s for s, state in self.streams.states.items() if state != "connected"]
        if down:
            reasons.append(f"{len(down)} event stream(s) not connected")
        return Readiness(ready=not reasons, reasons=tuple(reasons))

    def status(self) -> dict[str, str]:
        """A few lines for the landing page."""
        return {
            "control plane": self.settings.endpoint.url,
            "state": "up" if self.up() else "down",
            "followed sessions": str(len(self.discovery.followed)),
            "event streams": ", ".join(f"{n} {s}" for s, n in self.streams.stream_states().items())
            or "none",
            "task facts watermark (us)": str(self.facts.watermark_us),
        }

    def self_status(self) -> SelfStatus:
        """The exporter's own state, for its self-metrics."""
        streams = self.streams
        return SelfStatus(
            events_received=dict(streams.received),
            stream_states=streams.stream_states(),
            reconnects=streams.reconnects,
            last_event_at=streams.last_event_at,
            tasks_tracked=self.budget.used,
            followed=len(self.discovery.followed),
            unfollowed=self.discovery.unfollowed,
            dropped=dict(self.budget.dropped),
            stuck=self._stuck_tasks(),
            lag_seconds=streams.lag_by_session(),
            archive=self._archive_status(),
        )

    def _archive_status(self) -> ArchiveStatus | None:
        if self.archive is None or self.upkeep is None:
            return None
        writer = self.archive.stats
        return ArchiveStatus(
            rows={name: stats.rows for name, stats in self.upkeep.stats.items()},
            bytes={name: stats.bytes for name, stats in self.upkeep.stats.items()},
            rows_written=writer.rows_written,
            dropped_rows=writer.dropped_rows,
            write_errors=writer.write_errors,
        )

    def _stuck_tasks(self) -> dict[tuple[str, str], int]:
        computed_at, stuck = self._stuck
        now = self._clock()
        if now - computed_at < STUCK_REFRESH_S:
            return stuck
        tally: Counter[tuple[str, str]] = Counter()
        for session_id, tracker in self.streams.trackers.items():
            session = self.discovery.followed.get(session_id)
            limit = self.settings.stuck_threshold
            if session is not None and session.max_duration:
                limit = session.max_duration / MICROS
            partition = session.default_partition if session else ""
            for status, count in tracker.older_than(int(limit), int(now)).items():
                tally[(partition, status.name)] += count
        self._stuck = (now, dict(tally))
        return self._stuck[1]
