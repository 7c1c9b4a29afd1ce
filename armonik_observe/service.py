"""The exporter: collectors, pipeline, sinks and HTTP server, with one life cycle."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry

from armonik_observe import __version__
from armonik_observe.archive.reader import resume_point
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
from armonik_observe.exporters.exposition import Family
from armonik_observe.exporters.http import MetricsHttpServer, Readiness
from armonik_observe.exporters.prometheus import PrometheusSink, SelfStatus
from armonik_observe.exporters.status import StatusSnapshot
from armonik_observe.exporters.status import snapshot as status_snapshot
from armonik_observe.lifecycle import AsyncService, StartedStack
from armonik_observe.model import IN_FLIGHT_TASK_STATUSES, TaskStatus
from armonik_observe.pipeline import Pipeline, Sink
from armonik_observe.sinks import SinkContext, build_sinks

log = logging.getLogger(__name__)
MICROS = 1_000_000
# Counting stuck tasks walks every tracked task: do it at most this often.
STUCK_REFRESH_S = 10.0
IN_FLIGHT_STATUSES = tuple(s.name for s in IN_FLIGHT_TASK_STATUSES)
# Statuses of a task a worker holds: stuck after the session's max_duration, when it has one.
WITH_A_WORKER = (TaskStatus.DISPATCHED, TaskStatus.PROCESSING)
RESWEEP_AFTER_RESTART_US = 3600 * MICROS


class Exporter(AsyncService):
    """Watches one control plane and serves what it sees to Prometheus and the other sinks."""

    def __init__(
        self,
        settings: ServeSettings,
        *,
        registry: CollectorRegistry | None = None,
        sinks: Sequence[Sink] | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        stop_timeout: float = 45.0,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._monotonic = monotonic
        self._stop_timeout = stop_timeout
        self.registry = registry or CollectorRegistry()
        self.sink = PrometheusSink(
            registry=self.registry, up=self.up, self_status=self.self_status,
            version=__version__, core_compat=settings.core_compat,
            deadline_option=settings.session_deadline_option,
        )
        context = SinkContext(on_spans_exported=self.sink.offer_exemplars)
        self.outputs = list(build_sinks(settings, context) if sinks is None else sinks)
        self.sink.add_families(self._outputs_metrics)
        self.pipeline = Pipeline([self.sink, *self.outputs])
        self.connection = Connection(
            ChannelFactory(settings.endpoint, settings.tls), backoff=backoff,
            timeouts=settings.rpc_timeouts, observer=self.sink.observe_rpc,
        )
        self._build_collectors()
        self.http = MetricsHttpServer(
            registry=self.registry, listen=settings.listen, status=self.status,
            readiness=self.readiness, version=__version__, render=self.sink.render,
        )
        self._stack: StartedStack | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stuck: tuple[float, dict[tuple[str, str], int]] = (-STUCK_REFRESH_S, {})

    def _build_collectors(self) -> None:
        settings, publish, connection = self.settings, self.pipeline.publish, self.connection
        needs, monotonic = self.pipeline.needs(), self._monotonic
        self.budget = Budget(limit=settings.max_tracked_tasks)
        self.streams = EventStreams(
            connection=connection, publish=publish, budget=self.budget, clock=self._clock,
            max_lag=settings.max_event_lag, kinds=ALL_KINDS if needs.all_events else TASK_KINDS,
        )
        self.pipeline.sinks.insert(1, StreamLagSink(self.streams))
        self.discovery = SessionDiscovery(
            connection=connection, publish=publish, interval=settings.session_interval,
            max_followed=settings.max_followed_sessions, on_followed=self.streams.follow,
            overlap_us=int(settings.facts_overlap * MICROS),
            resync_interval=settings.session_resync_interval, monotonic=monotonic,
        )
        self.counts = CountsPoller(
            connection=connection, publish=publish, interval=settings.count_interval,
            followed=self.discovery.followed_ids, clock=self._clock, monotonic=monotonic,
        )
        self.health = HealthPoller(
            connection=connection, publish=publish, interval=settings.health_interval,
            clock=self._clock, monotonic=monotonic,
        )
        self.facts = TaskFactsPoller(
            connection=connection, publish=publish, interval=settings.facts_interval,
            overlap_us=int(settings.facts_overlap * MICROS), detailed=needs.detailed_facts,
            monotonic=monotonic,
        )
        self.pollers: list[Poller] = [self.discovery, self.health, self.counts, self.facts]
        self.sweeper: ResultsSweeper | None = None
        if needs.results:
            self.sweeper = sweeper = ResultsSweeper(
                connection=connection, publish=publish, interval=settings.session_interval,
                start_point=self._sessions_start_point, monotonic=monotonic,
            )
            self.discovery.on_changed.append(sweeper.note)
            self.pollers.append(sweeper)

    def output(self, name: str) -> Sink | None:
        """The sink of that name (e.g. "archive"), when the settings turned it on."""
        return next((sink for sink in self.outputs if sink.name == name), None)

    def _outputs_metrics(self) -> Iterator[Family]:
        return itertools.chain.from_iterable(sink.self_metrics() for sink in self.outputs)

    def _sessions_start_point(self) -> int | None:
        """Where session changes count (the change feed, results swept): from the task facts'
        floor; after a restart, from an hour before the archive's watermark (sessions that
        ended before the last run could see them)."""
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
        resumed = resume_point(settings.archive, started_at_us, self.facts.overlap_us)
        return FactsOrigin.at(resumed.first_start_us, settings.backfill, settings.clock_skew,
                              resumed.watermark_us, resumed.archived)

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the sinks, serve HTTP, then poll and stream (the control plane may be down).

        A failure halfway stops what had started, in reverse order, and raises.
        """
        if self._stack is not None:
            return
        started_at_us = int(self._clock() * MICROS)
        self._stack = stack = StartedStack(self._stop_timeout)
        try:
            # Before the sinks start: the archive's upkeep may compact what this reads.
            self.facts.place(await asyncio.to_thread(self._facts_origin, started_at_us))
            self.discovery.place(self._sessions_start_point() or 0)
            for sink in self.pipeline.sinks:
                await stack.enter(f"sink {sink.name}", sink.start, sink.stop)
            stack.defer("connection", self.connection.close)
            await stack.enter("http server", self.http.start, self.http.stop)
            await stack.enter("collectors", self._start_collectors, self._stop_collectors)
        except BaseException:
            await self.stop()
            raise
        log.debug("serving metrics on %s/metrics for %s", self.http.url,
                 self.settings.endpoint.url)

    async def _start_collectors(self) -> None:
        self._tasks = [
            asyncio.create_task(poller.run(self._stop), name=f"poll-{poller.name}")
            for poller in self.pollers
        ]
        self._tasks.append(asyncio.create_task(self.streams.run(self._stop), name="streams"))

    async def _stop_collectors(self) -> None:
        # Collectors only read: a call in flight (deadlines reach a minute) is abandoned at
        # once rather than waited for, so the sinks keep the time to flush what they hold.
        self._stop.set()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Stop the collectors, the server and the sinks (flushed); idempotent and bounded."""
        stack = self._stack
        if stack is not None:
            await stack.close()

    # -- status -------------------------------------------------------------------------------

    def up(self) -> bool:
        """True when the control plane answered the last polls."""
        return bool(self.connection.up) and all(p.ok is not False for p in self.pollers)

    def readiness(self) -> Readiness:
        """Ready when every poller succeeded recently and every followed stream is connected."""
        now = self._monotonic()
        reasons = [why for p in self.pollers if (why := p.staleness(now)) is not None]
        down = [s for s, state in self.streams.states.items() if state != "connected"]
        if down:
            reasons.append(f"{len(down)} event stream(s) not connected")
        if self.streams.mishaps.failing:
            reasons.append(f"events: failing unexpectedly, last {self.streams.mishaps.last}")
        return Readiness(ready=not reasons, reasons=tuple(reasons))

    def status(self) -> StatusSnapshot:
        """What the status page at / shows, read now."""
        return status_snapshot(self, self._clock(), self._monotonic())

    def self_status(self) -> SelfStatus:
        """The exporter's own state, for its self-metrics."""
        streams = self.streams
        errors = {p.name: p.mishaps.count for p in self.pollers}
        errors["events"] = streams.mishaps.count
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
            collector_errors=errors,
            asyncio_tasks=_asyncio_tasks(),
            caches=self._caches(),
        )

    def _caches(self) -> dict[str, int]:
        """Entries of every bounded cache, for armonik_observe_cache_entries."""
        caches = {
            **{name: size for sink in self.pipeline.sinks for name, size in sink.caches().items()},
            "recent_ends": sum(t.recent_ends() for t in self.streams.trackers.values()),
            "facts_seen": self.facts.seen_ids(),
            "lag_pending": self.streams.lag.pending(),
            "sessions": self.discovery.remembered(),
        }
        if self.sweeper is not None:
            caches["results"] = self.sweeper.remembered()
        return caches

    def _stuck_tasks(self) -> dict[tuple[str, str], int]:
        computed_at, stuck = self._stuck
        now = self._clock()
        if now - computed_at < STUCK_REFRESH_S:
            return stuck
        # Every known partition and in-flight status from 0: a quiet cluster shows 0, not no data.
        tally: Counter[tuple[str, str]] = Counter(dict.fromkeys(
            ((p, s) for p in self.sink.state.partitions for s in IN_FLIGHT_STATUSES), 0))
        threshold = int(self.settings.stuck_threshold)
        for session_id, tracker in self.streams.trackers.items():
            session = self.discovery.followed.get(session_id)
            # max_duration bounds a task's run, not its wait in the queue: a backlog is no fault
            limits = None
            if session is not None and session.max_duration:
                limits = dict.fromkeys(WITH_A_WORKER, int(session.max_duration / MICROS))
            partition = session.default_partition if session else ""
            for status, count in tracker.older_than(threshold, int(now), limits).items():
                tally[(partition, status.name)] += count
        self._stuck = (now, dict(tally))
        return self._stuck[1]


def _asyncio_tasks() -> int:
    """Tasks alive on the running loop (0 when read outside one)."""
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:
        return 0
