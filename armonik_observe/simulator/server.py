"""The embedded simulator: a real gRPC server on a port, the plane, its clock and ground truth.

    async with Simulator(builtin_scenario("demo"), speed=50) as sim:
        ...  # point a client at sim.endpoint

With a `ManualClock`, nothing moves until the test calls `advance` or `run_until_idle`.
Ended tasks expire `ttl` simulated seconds after they end (expiry.py), as on a real control plane.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator

import grpc
from armonik.protogen.client import (
    applications_service_pb2_grpc,
    auth_service_pb2_grpc,
    events_service_pb2_grpc,
    health_checks_service_pb2_grpc,
    partitions_service_pb2_grpc,
    results_service_pb2_grpc,
    sessions_service_pb2_grpc,
    submitter_service_pb2_grpc,
    tasks_service_pb2_grpc,
    versions_service_pb2_grpc,
)

from armonik_observe.lifecycle import AsyncService
from armonik_observe.simulator.clock import MICROS, ManualClock, ScaledClock, Scheduler, SimClock
from armonik_observe.simulator.events import EmittedEvent, EventBus
from armonik_observe.simulator.faults import FaultInterceptor, FaultPlan
from armonik_observe.simulator.plane import ControlPlane
from armonik_observe.simulator.profile import TaskProfile
from armonik_observe.simulator.records import SimPartition, SimSession, SimTask
from armonik_observe.simulator.scenario import PartitionSpec, Scenario
from armonik_observe.simulator.services import events, platform, results, sessions, tasks
from armonik_observe.simulator.store import DEFAULT_TTL_US
from armonik_observe.simulator.workers import WorkerPools
from armonik_observe.simulator.workload import Workload

# Each driver step runs at most this many actions before letting streams send: a stream needs
# one loop turn per message, so long steps starve it.
_STEP = 200
_EMPTY = Scenario(name="empty", partitions=(PartitionSpec(id="default", pods=4),), sessions=())


def _ttl_us(seconds: float) -> int:
    if not seconds > 0:
        raise ValueError(f"ttl must be positive, got {seconds}")
    return int(seconds * MICROS)


class SimulatorError(RuntimeError):
    """The simulator cannot start, e.g. its port is taken."""


def _partition(spec: PartitionSpec) -> SimPartition:
    return SimPartition(
        partition_id=spec.id,
        pod_max=spec.pod_max or spec.pods,
        pod_reserved=spec.pod_reserved,
        priority=spec.priority,
        preemption_percentage=spec.preemption,
        hostnames=[f"{spec.id}-pod-{i:04d}" for i in range(spec.pods)],
        slots_per_pod=spec.slots,
        pod_configuration={"slots": str(spec.slots)},
    )


def _check_free(listen: str) -> None:
    """Refuse a taken port with a clear message before gRPC logs its own."""
    host, _, port = listen.rpartition(":")
    if not port.isdigit() or int(port) == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # Like a server's listener: lingering closed connections do not count as "in use".
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), int(port)))
        except OSError as error:
            raise SimulatorError(f"cannot listen on {listen}: {error.strerror}") from None


class Simulator(AsyncService):
    """A simulated ArmoniK control plane served over gRPC."""

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        listen: str = "127.0.0.1:0",
        clock: SimClock | None = None,
        speed: float = 1.0,
        start_us: int | None = None,
        seed: int | None = None,
        faults: FaultPlan | None = None,
        rate: float | None = None,
        record_events: bool = True,
        default_profile: TaskProfile | None = None,
        ttl: float = DEFAULT_TTL_US / MICROS,
        id_salt: int = 0,
    ) -> None:
        self.scenario = scenario or _EMPTY
        self._listen = listen
        start = start_us if start_us is not None else int(time.time() * MICROS)
        self.clock: SimClock = clock or ScaledClock(start_us=start, speed=speed)
        self.start_us = self.clock.now_us()
        self.faults = faults or FaultPlan()
        seed = self.scenario.seed if seed is None else seed
        self.scheduler = Scheduler(self.start_us)
        self.bus = EventBus(seed=seed, record=record_events)
        self.plane = ControlPlane(
            clock=self.clock,
            scheduler=self.scheduler,
            bus=self.bus,
            rng=random.Random(seed),
            partitions=[_partition(p) for p in self.scenario.partitions],
            default_profile=default_profile or TaskProfile(),
            ttl_us=_ttl_us(ttl),
            id_salt=id_salt,
        )
        self.pools = WorkerPools(self.plane)
        self.workload = Workload(self.plane, self.scenario, start_us=self.start_us)
        if rate is not None:
            self.workload.set_stream_rate(rate)
        self._rng = random.Random(seed + 1)
        self._interceptor = FaultInterceptor(self.faults, self._rng)
        self._server: grpc.aio.Server | None = None
        self._driver: asyncio.Task[None] | None = None
        self._restarter: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.port = 0
        self.scheduler.on_new_head = self._wake.set

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The URL a client connects to, e.g. http://127.0.0.1:5001."""
        host = self._listen.rpartition(":")[0] or "127.0.0.1"
        return f"http://{host}:{self.port}"

    @property
    def calls(self) -> Counter[str]:
        """Every call the server received, by RPC name (restarts included)."""
        return self._interceptor.calls

    @property
    def target(self) -> str:
        """The host:port a raw gRPC channel connects to."""
        return self.endpoint.removeprefix("http://")

    async def start(self) -> None:
        """Bind the server, start the workload and, on a real-time clock, the driver."""
        await self._serve(self._listen)
        self.workload.start()
        if not isinstance(self.clock, ManualClock):
            self._driver = asyncio.create_task(self._drive(), name="simulator-driver")
        if self.faults.restart_at_s is not None:
            self._restarter = asyncio.create_task(self._planned_restart(), name="restart")

    async def stop(self, grace: float = 0.5) -> None:
        """Stop serving and driving; idempotent."""
        self._stopping.set()
        self._wake.set()
        self.bus.close_all()
        for task in (self._driver, self._restarter):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._driver = self._restarter = None
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    async def _serve(self, listen: str) -> None:
        _check_free(listen)
        server = grpc.aio.server(
            interceptors=[self._interceptor],
            options=[("grpc.so_reuseport", 0), ("grpc.max_send_message_length", 64 << 20)],
        )
        self._register(server)
        try:
            port = server.add_insecure_port(listen)
        except RuntimeError as error:
            raise SimulatorError(f"cannot listen on {listen}: {error}") from None
        if port == 0:
            raise SimulatorError(f"cannot listen on {listen}: address in use or invalid")
        await server.start()
        self._server, self.port = server, port

    def _register(self, server: grpc.aio.Server) -> None:
        plane = self.plane
        sessions_service_pb2_grpc.add_SessionsServicer_to_server(sessions.Sessions(plane), server)
        tasks_service_pb2_grpc.add_TasksServicer_to_server(tasks.Tasks(plane), server)
        results_service_pb2_grpc.add_ResultsServicer_to_server(results.Results(plane), server)
        events_service_pb2_grpc.add_EventsServicer_to_server(
            events.Events(plane, self.faults, self._rng), server
        )
        health_checks_service_pb2_grpc.add_HealthChecksServiceServicer_to_server(
            platform.HealthChecks(self.faults), server
        )
        partitions_service_pb2_grpc.add_PartitionsServicer_to_server(
            platform.Partitions(plane), server
        )
        applications_service_pb2_grpc.add_ApplicationsServicer_to_server(
            platform.Applications(plane), server
        )
        versions_service_pb2_grpc.add_VersionsServicer_to_server(platform.Versions(), server)
        auth_service_pb2_grpc.add_AuthenticationServicer_to_server(
            platform.Authentication(), server
        )
        submitter_service_pb2_grpc.add_SubmitterServicer_to_server(platform.Submitter(), server)

    # -- driving time -------------------------------------------------------------------------

    async def _drive(self) -> None:
        scheduler, clock = self.scheduler, self.clock
        while not self._stopping.is_set():
            if scheduler.run_due(clock.now_us(), _STEP) == _STEP:
                await asyncio.sleep(0)  # let the streams send before the next step
                continue
            due = scheduler.next_wake()
            timeout = None if due is None else clock.wall_seconds_until(due)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def advance(self, seconds: float) -> None:
        """Run simulated time forward by `seconds` (manual clock only), letting streams send."""
        await self.advance_to(self.clock.now_us() + int(seconds * MICROS))

    async def advance_to(self, target_us: int) -> None:
        """Run simulated time forward to `target_us` (manual clock only)."""
        clock = self._manual_clock()
        while self.scheduler.run_due(target_us, _STEP) == _STEP:
            clock.set(self.scheduler.current_us)
            await asyncio.sleep(0)
        clock.set(target_us)
        await asyncio.sleep(0)

    async def run_until_idle(self, max_seconds: float = 86_400.0) -> None:
        """Run until the scenario is over (only upkeep is left) or `max_seconds` have passed."""
        clock = self._manual_clock()
        limit = clock.now_us() + int(max_seconds * MICROS)
        while (due := self.scheduler.next_due()) is not None and due <= limit:
            self.scheduler.run_due(limit, _STEP)
            clock.set(self.scheduler.current_us)
            await asyncio.sleep(0)  # let the streams send between steps

    def _manual_clock(self) -> ManualClock:
        if not isinstance(self.clock, ManualClock):
            raise TypeError("advance() and run_until_idle() need a ManualClock")
        return self.clock

    # -- faults -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def down(self) -> AsyncIterator[None]:
        """Take the server down (every stream is cut) for the body; it comes back, same state."""
        await self.take_down()
        try:
            yield
        finally:
            await self.bring_up()

    async def take_down(self) -> None:
        """Stop answering on the port (every stream is cut); time and the workload go on."""
        self.bus.close_all()
        if self._server is not None:
            await self._server.stop(0)
            self._server = None

    async def bring_up(self) -> None:
        """Answer again on the same port, with the state time has made meanwhile."""
        if self._server is None:
            await self._serve(f"{self._listen.rpartition(':')[0]}:{self.port}")

    async def _planned_restart(self) -> None:
        """The `restart=AT/DOWN` fault: down AT wall seconds after start, for DOWN seconds."""
        assert self.faults.restart_at_s is not None
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            done, _ = await asyncio.wait({stopping}, timeout=self.faults.restart_at_s)
            if not done:
                await self.restart(self.faults.restart_down_s)
        finally:
            stopping.cancel()

    async def restart(self, down_seconds: float) -> None:
        """Take the server down for `down_seconds` of wall time, then bring it back."""
        async with self.down():
            await asyncio.sleep(down_seconds)

    # -- ground truth -------------------------------------------------------------------------

    def true_tasks(self) -> list[SimTask]:
        """Every task the plane holds, deleted sessions' tasks included.

        Expired tasks are gone (`plane.expired_tasks` counts them): a test that needs every
        task keeps the default TTL (10 simulated days).
        """
        return [*self.plane.tasks.values(), *self.plane.deleted_tasks.values()]

    def true_sessions(self) -> list[SimSession]:
        """Every session record the plane holds (`plane.expired_sessions` counts the others)."""
        return [state.record for state in self.plane.sessions.values()]

    def emitted_events(self) -> list[EmittedEvent]:
        """Every event sent on any stream, in order."""
        return list(self.bus.emitted)
