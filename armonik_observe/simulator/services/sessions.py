"""Sessions service: the 10 session RPCs."""

from __future__ import annotations

from typing import Any

from armonik.protogen.client.sessions_service_pb2_grpc import SessionsServicer
from armonik.protogen.common import sessions_common_pb2 as pb

from armonik_observe.simulator import convert
from armonik_observe.simulator.query import Entity
from armonik_observe.simulator.services.base import PlaneServicer, list_page, unary


class Sessions(PlaneServicer, SessionsServicer):
    """Create, list and drive sessions through their life cycle."""

    @unary
    def ListSessions(self, request: Any, context: Any) -> Any:
        records = [state.record for state in self.plane.sessions.values()]
        page, total = list_page(records, Entity.SESSION, request)
        raws = [convert.session_raw(s, request.with_task_options) for s in page]
        return pb.ListSessionsResponse(
            sessions=raws, page=request.page, page_size=request.page_size, total=total
        )

    @unary
    def GetSession(self, request: Any, context: Any) -> Any:
        record = self.plane.session(request.session_id).record
        return pb.GetSessionResponse(session=convert.session_raw(record))

    @unary
    def CreateSession(self, request: Any, context: Any) -> Any:
        record = self.plane.create_session(request.default_task_option, request.partition_ids)
        return pb.CreateSessionReply(session_id=record.session_id)

    @unary
    def CancelSession(self, request: Any, context: Any) -> Any:
        record = self.plane.cancel_session(request.session_id)
        return pb.CancelSessionResponse(session=convert.session_raw(record))

    @unary
    def PauseSession(self, request: Any, context: Any) -> Any:
        record = self.plane.pause_session(request.session_id)
        return pb.PauseSessionResponse(session=convert.session_raw(record))

    @unary
    def ResumeSession(self, request: Any, context: Any) -> Any:
        record = self.plane.resume_session(request.session_id)
        return pb.ResumeSessionResponse(session=convert.session_raw(record))

    @unary
    def CloseSession(self, request: Any, context: Any) -> Any:
        record = self.plane.close_session(request.session_id)
        return pb.CloseSessionResponse(session=convert.session_raw(record))

    @unary
    def PurgeSession(self, request: Any, context: Any) -> Any:
        record = self.plane.purge_session(request.session_id)
        return pb.PurgeSessionResponse(session=convert.session_raw(record))

    @unary
    def DeleteSession(self, request: Any, context: Any) -> Any:
        record = self.plane.delete_session(request.session_id)
        return pb.DeleteSessionResponse(session=convert.session_raw(record))

    @unary
    def StopSubmission(self, request: Any, context: Any) -> Any:
        record = self.plane.stop_submission(request.session_id, request.client, request.worker)
        return pb.StopSubmissionResponse(session=convert.session_raw(record))
