"""The small services: health, partitions, applications, versions, authentication, submitter."""

from __future__ import annotations

from typing import Any

import grpc
from armonik.protogen.client.applications_service_pb2_grpc import ApplicationsServicer
from armonik.protogen.client.auth_service_pb2_grpc import AuthenticationServicer
from armonik.protogen.client.health_checks_service_pb2_grpc import HealthChecksServiceServicer
from armonik.protogen.client.partitions_service_pb2_grpc import PartitionsServicer
from armonik.protogen.client.submitter_service_pb2_grpc import SubmitterServicer
from armonik.protogen.client.versions_service_pb2_grpc import VersionsServicer
from armonik.protogen.common import applications_common_pb2 as apps_pb
from armonik.protogen.common import auth_common_pb2 as auth_pb
from armonik.protogen.common import health_checks_common_pb2 as health_pb
from armonik.protogen.common import partitions_common_pb2 as partitions_pb
from armonik.protogen.common import versions_common_pb2 as versions_pb

from armonik_observe.model import HealthStatus
from armonik_observe.simulator import convert
from armonik_observe.simulator.faults import FaultPlan
from armonik_observe.simulator.plane import PlaneError
from armonik_observe.simulator.query import Entity, applications_of, run_list_query
from armonik_observe.simulator.services.base import PlaneServicer, invalid, list_page, unary

CORE_VERSION = "0.40.0-sim"
API_VERSION = "3.29.0"
HEALTH_SERVICES = ("database", "object", "queue")


class HealthChecks(HealthChecksServiceServicer):
    """Health of the database, object storage and queue, as the fault plan sets it."""

    def __init__(self, faults: FaultPlan) -> None:
        self.faults = faults

    async def CheckHealth(self, request: Any, context: Any) -> Any:
        services = []
        for name in HEALTH_SERVICES:
            status = self.faults.health.get(name, HealthStatus.HEALTHY)
            message = "" if status == HealthStatus.HEALTHY else f"simulated: {name} {status.name}"
            services.append(
                health_pb.CheckHealthResponse.ServiceHealth(
                    name=name, message=message, healthy=int(status)
                )
            )
        return health_pb.CheckHealthResponse(services=services)


class Partitions(PlaneServicer, PartitionsServicer):
    """Partition listing."""

    @unary
    def ListPartitions(self, request: Any, context: Any) -> Any:
        page, total = list_page(list(self.plane.partitions.values()), Entity.PARTITION, request)
        return partitions_pb.ListPartitionsResponse(
            partitions=[convert.partition_raw(p) for p in page],
            page=request.page, page_size=request.page_size, total=total,
        )

    @unary
    def GetPartition(self, request: Any, context: Any) -> Any:
        partition = self.plane.partitions.get(request.id)
        if partition is None:
            raise PlaneError(grpc.StatusCode.NOT_FOUND, f"partition {request.id!r} not found")
        return partitions_pb.GetPartitionResponse(partition=convert.partition_raw(partition))


class Applications(PlaneServicer, ApplicationsServicer):
    """Applications: task options grouped by name, version, namespace and service."""

    @unary
    def ListApplications(self, request: Any, context: Any) -> Any:
        if not request.sort.fields:
            raise invalid("sort must name at least one field")
        apps = applications_of(self.plane.tasks.values())
        page, total = run_list_query(
            apps, Entity.APPLICATION, request.filters, list(request.sort.fields),
            request.sort.direction, request.page, request.page_size,
        )
        return apps_pb.ListApplicationsResponse(
            applications=[
                apps_pb.ApplicationRaw(
                    name=a.name, version=a.version, namespace=a.namespace, service=a.service
                )
                for a in page
            ],
            page=request.page, page_size=request.page_size, total=total,
        )


class Versions(VersionsServicer):
    """Core and API versions."""

    async def ListVersions(self, request: Any, context: Any) -> Any:
        return versions_pb.ListVersionsResponse(core=CORE_VERSION, api=API_VERSION)


class Authentication(AuthenticationServicer):
    """Authentication is off, so the user is Anonymous with every permission."""

    async def GetCurrentUser(self, request: Any, context: Any) -> Any:
        return auth_pb.GetCurrentUserResponse(
            user=auth_pb.User(username="Anonymous", roles=[], permissions=["*"])
        )


class Submitter(SubmitterServicer):
    """The legacy Submitter service: every call answers UNIMPLEMENTED, from the base class."""
