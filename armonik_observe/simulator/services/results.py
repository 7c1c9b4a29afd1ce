"""Results service: metadata, data upload and download, and watching result statuses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from armonik.protogen.client.results_service_pb2_grpc import ResultsServicer
from armonik.protogen.common import results_common_pb2 as pb

from armonik_observe.model import ResultStatus
from armonik_observe.simulator import convert
from armonik_observe.simulator.plane import PlaneError
from armonik_observe.simulator.query import Entity
from armonik_observe.simulator.records import SimResult
from armonik_observe.simulator.services.base import PlaneServicer, list_page, unary

CHUNK_SIZE = 80 * 1024
_NOTFOUND = int(ResultStatus.NOTFOUND)


class Results(PlaneServicer, ResultsServicer):
    """Result metadata and data."""

    @unary
    def ListResults(self, request: Any, context: Any) -> Any:
        page, total = list_page(list(self.plane.results.values()), Entity.RESULT, request)
        return pb.ListResultsResponse(
            results=[convert.result_raw(r) for r in page],
            page=request.page, page_size=request.page_size, total=total,
        )

    @unary
    def GetResult(self, request: Any, context: Any) -> Any:
        return pb.GetResultResponse(result=convert.result_raw(self.plane.result(request.result_id)))

    @unary
    def GetOwnerTaskId(self, request: Any, context: Any) -> Any:
        results = [self.plane.result(r, request.session_id) for r in request.result_id]
        return pb.GetOwnerTaskIdResponse(
            session_id=request.session_id,
            result_task=[
                pb.GetOwnerTaskIdResponse.MapResultTask(
                    result_id=r.result_id, task_id=r.owner_task_id
                )
                for r in results
            ],
        )

    @unary
    def CreateResultsMetaData(self, request: Any, context: Any) -> Any:
        specs = [(r.name, None, r.manual_deletion) for r in request.results]
        created = self.plane.create_results(request.session_id, specs)
        return pb.CreateResultsMetaDataResponse(results=[convert.result_raw(r) for r in created])

    @unary
    def CreateResults(self, request: Any, context: Any) -> Any:
        specs = [(r.name, bytes(r.data), r.manual_deletion) for r in request.results]
        created = self.plane.create_results(request.session_id, specs)
        return pb.CreateResultsResponse(results=[convert.result_raw(r) for r in created])

    async def UploadResultData(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> Any:
        identifier, chunks = None, []
        async for message in request_iterator:
            if message.WhichOneof("type") == "id":
                identifier = message.id
            else:
                chunks.append(message.data_chunk)
        if identifier is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be id")
        try:
            result = self.plane.upload_result_data(
                identifier.session_id, identifier.result_id, b"".join(chunks)
            )
        except PlaneError as error:
            await context.abort(error.code, error.message)
        return pb.UploadResultDataResponse(result=convert.result_raw(result))

    async def DownloadResultData(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        try:
            data = self.plane.result_data(request.session_id, request.result_id)
        except PlaneError as error:
            await context.abort(error.code, error.message)
        for start in range(0, max(len(data), 1), CHUNK_SIZE):
            yield pb.DownloadResultDataResponse(data_chunk=data[start : start + CHUNK_SIZE])

    @unary
    def DeleteResultsData(self, request: Any, context: Any) -> Any:
        deleted = self.plane.delete_results_data(request.session_id, request.result_id)
        return pb.DeleteResultsDataResponse(session_id=request.session_id, result_id=deleted)

    @unary
    def ImportResultsData(self, request: Any, context: Any) -> Any:
        imported = [
            self.plane.import_result(request.session_id, r.result_id, r.opaque_id)
            for r in request.results
        ]
        return pb.ImportResultsDataResponse(results=[convert.result_raw(r) for r in imported])

    @unary
    def GetServiceConfiguration(self, request: Any, context: Any) -> Any:
        return pb.ResultsServiceConfigurationResponse(data_chunk_max_size=CHUNK_SIZE)

    async def WatchResults(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        responses: asyncio.Queue[Any] = asyncio.Queue()
        watched: dict[str, set[int]] = {}

        def on_change(result: SimResult) -> None:
            if int(result.status) in watched.get(result.result_id, ()):
                responses.put_nowait(_watch_response(result))

        self.plane.bus.result_watchers.append(on_change)
        reader = asyncio.create_task(
            self._read_watch_requests(request_iterator, watched, responses)
        )
        try:
            while True:
                yield await responses.get()
        finally:
            reader.cancel()
            self.plane.bus.result_watchers.remove(on_change)

    async def _read_watch_requests(
        self,
        request_iterator: AsyncIterator[Any],
        watched: dict[str, set[int]],
        responses: asyncio.Queue[Any],
    ) -> None:
        async for request in request_iterator:
            fetch = {int(s) for s in request.fetch_statuses}
            for result_id in request.result_ids:
                watched[result_id] = {int(s) for s in request.watch_statuses}
                result = self.plane.results.get(result_id)
                if result is None:
                    # Unknown ids are answered at once with the special NOTFOUND state.
                    responses.put_nowait(
                        pb.WatchResultResponse(status=_NOTFOUND, result_ids=[result_id])
                    )
                elif int(result.status) in fetch:
                    responses.put_nowait(_watch_response(result))


def _watch_response(result: SimResult) -> Any:
    return pb.WatchResultResponse(status=int(result.status), result_ids=[result.result_id])
