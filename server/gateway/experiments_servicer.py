"""The `imgclf.v1.Experiments` servicer (read-only, no token) and the `imgclf.v1.Admin` servicer.

Admin calls are authorized here by bearer token before anything else runs, and every one of
them is audit-logged on the `imgclf.audit` logger: who (token fingerprint), what (method and
experiment), and the outcome (status code).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc
from imgclf.v1 import admin_pb2, admin_pb2_grpc, experiments_pb2, experiments_pb2_grpc

from server.experiments.registry import ActiveExperiment, ExperimentRegistry
from server.experiments.reports import ReportService
from server.gateway import experiment_converters as xc
from server.gateway.admin_auth import TokenAuthorizer
from server.gateway.errors import GatewayError, InvalidRequest
from server.gateway.interceptor import status_for

audit_log = logging.getLogger("imgclf.audit")
T = TypeVar("T")
ClassNames = Callable[[ActiveExperiment], Awaitable[tuple[str, ...]]]


class ExperimentsServicer(experiments_pb2_grpc.ExperimentsServicer):
    def __init__(
        self, registry: ExperimentRegistry, reports: ReportService, class_names: ClassNames
    ) -> None:
        self._registry = registry
        self._reports = reports
        self._class_names = class_names

    async def ListExperiments(
        self,
        request: experiments_pb2.ListExperimentsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> experiments_pb2.ListExperimentsResponse:
        active = self._registry.experiments(include_ended=request.include_ended)
        return experiments_pb2.ListExperimentsResponse(
            experiments=[xc.experiment_to_proto(a) for a in active]
        )

    async def GetExperimentReport(
        self,
        request: experiments_pb2.GetExperimentReportRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> experiments_pb2.ExperimentReport:
        since = None
        if request.HasField("since"):
            try:
                since = request.since.ToDatetime(tzinfo=UTC)
            except ValueError as error:
                raise InvalidRequest(
                    "since must be a valid Timestamp (years 1 to 9999, nanos 0 to 999,999,999)"
                ) from error
        return await report_message(self._reports, self._class_names, request.name, since)


async def report_message(
    reports: ReportService,
    class_names: ClassNames,
    name: str,
    since: datetime | None = None,
) -> experiments_pb2.ExperimentReport:
    """The report of `name` as its proto message (shared by gRPC and the HTTP side)."""
    if not name:
        raise InvalidRequest("the experiment name is required")
    result = await reports.report(name, since)
    return xc.report_to_proto(result.active, result.report, await class_names(result.active))


class AdminServicer(admin_pb2_grpc.AdminServicer):
    def __init__(self, registry: ExperimentRegistry, authorizer: TokenAuthorizer) -> None:
        self._registry = registry
        self._authorizer = authorizer

    async def _audited(
        self,
        method: str,
        experiment: str,
        context: grpc.aio.ServicerContext[Any, Any],
        action: Callable[[], Awaitable[T]],
    ) -> T:
        who = "anonymous"
        outcome = "OK"
        try:
            who = self._authorizer.authorize(tuple(context.invocation_metadata() or ()))
            return await action()
        except GatewayError as error:
            outcome = status_for(error).name
            raise
        except Exception:
            outcome = "INTERNAL"
            raise
        finally:
            audit_log.info(
                "admin %s %s: %s",
                method,
                experiment[:128],
                outcome,
                extra={
                    "who": who,
                    "admin_method": method,
                    "experiment": experiment[:128],
                    "code": outcome,
                },
            )

    async def CreateExperiment(
        self,
        request: admin_pb2.CreateExperimentRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> experiments_pb2.Experiment:
        async def create() -> experiments_pb2.Experiment:
            active = await self._registry.create(xc.experiment_from_proto(request.experiment))
            return xc.experiment_to_proto(active)

        return await self._audited("CreateExperiment", request.experiment.name, context, create)

    async def UpdateExperiment(
        self,
        request: admin_pb2.UpdateExperimentRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> experiments_pb2.Experiment:
        async def update() -> experiments_pb2.Experiment:
            active = await self._registry.update(
                xc.experiment_from_proto(request.experiment),
                expected_revision=request.expected_revision or None,
                restart=request.restart,
            )
            return xc.experiment_to_proto(active)

        return await self._audited("UpdateExperiment", request.experiment.name, context, update)

    async def EndExperiment(
        self, request: admin_pb2.EndExperimentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> experiments_pb2.Experiment:
        async def end() -> experiments_pb2.Experiment:
            if not request.name:
                raise InvalidRequest("the experiment name is required")
            return xc.experiment_to_proto(await self._registry.end(request.name))

        return await self._audited("EndExperiment", request.name, context, end)
