"""gRPC tracing: which RPCs get spans, and interceptors that record them only while this
process records spans (fluid.service.telemetry.spans_recorded).

Apart from fluid.service.telemetry so that a process that never opens a channel (a
cpu-bound run's fresh interpreter) does not import grpc for its trace context.
"""

from __future__ import annotations

import functools
from typing import Any, cast

import grpc

from fluid.scheduler.v1.dispatcher_pb2_grpc import DispatcherServiceServicer as Dispatcher
from fluid.scheduler.v1.history_pb2_grpc import HistoryServiceServicer as History

from .call_metadata import (
    ServerInterceptorBase,
    UnaryStreamInterceptor,
    UnaryUnaryInterceptor,
    with_metadata,
)
from .telemetry import current_trace_context, spans_recorded


@functools.cache
def _untraced_methods() -> frozenset[str]:
    """RPCs that carry many runs at once (leases, reports, history batches) or stream for a
    long time: they belong to no single run's trace, each run gets its own spans instead
    (execution, history write) parented on the trace stored with it. Tracing them, like
    health checks and reflection, would only add cost to the hot path and noise to the
    traces."""
    # Named by the generated servicers' methods rather than as strings, so renaming one of
    # these RPCs fails type checking instead of quietly tracing it.
    return frozenset(
        rpc.__name__
        for rpc in (
            Dispatcher.LeaseRuns,
            Dispatcher.Heartbeat,
            Dispatcher.ReportRuns,
            Dispatcher.ReleaseRuns,
            Dispatcher.RegisterWorker,
            Dispatcher.WatchRun,
            History.RecordRuns,
        )
    )


@functools.lru_cache(maxsize=256)
def _is_traced(method: str) -> bool:
    service, _, name = method.lstrip("/").rpartition("/")
    return service.startswith("fluid.") and name not in _untraced_methods()


def _traced_rpcs(details: Any) -> bool:
    # A plain function: the library's composable filters cost more than the RPC they
    # decide about (typing.Protocol checks on every call).
    method = details.method
    return _is_traced(method.decode() if isinstance(method, bytes) else method)


class _ServerGate(ServerInterceptorBase):
    """OpenTelemetry's server interceptor while spans are recorded, none otherwise: its
    no-op spans cost about a fifth of a QueueRun. Without it the servicers read the
    caller's trace context from the metadata (caller_trace_context)."""

    def __init__(self, recording: Any) -> None:
        self._recording = recording

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        if spans_recorded():
            return await self._recording.intercept_service(continuation, details)
        return await continuation(details)


class _ClientGate:
    """OpenTelemetry's client interceptor while spans are recorded; otherwise only the
    caller's trace context (when it is in one, as a task is) is sent along, without the
    cost of a no-op span per call."""

    def __init__(self, recording: Any) -> None:
        self._recording = recording

    async def _call(self, traced: Any, continuation: Any, details: Any, request: Any) -> Any:
        if spans_recorded():
            return await traced(continuation, details, request)
        return await continuation(with_metadata(details, current_trace_context().items()), request)


class _UnaryGate(_ClientGate, UnaryUnaryInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        traced = self._recording.intercept_unary_unary
        return await self._call(traced, continuation, details, request)


class _StreamGate(_ClientGate, UnaryStreamInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        traced = self._recording.intercept_unary_stream
        return await self._call(traced, continuation, details, request)


def server_interceptors() -> list[grpc.aio.ServerInterceptor[Any, Any]]:
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [_ServerGate(aio_server_interceptor(filter_=_traced_rpcs))]  # type: ignore[no-untyped-call]


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    # fluid's RPCs are unary or server-streaming: the other two kinds are never called.
    unary, stream, *_ = aio_client_interceptors(filter_=_traced_rpcs)  # type: ignore[no-untyped-call]
    # The stubs type the list's items as a placeholder no class can satisfy.
    return [
        cast(grpc.aio.ClientInterceptor, _UnaryGate(unary)),
        cast(grpc.aio.ClientInterceptor, _StreamGate(stream)),
    ]
