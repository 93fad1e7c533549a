"""Tracing set-up and the W3C trace context a run carries from queue to history.

The tracer provider and gRPC instrumentation load on first use: a cpu-bound run's fresh
process imports this module for ``context_from`` and should not pay for grpc with it.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    import grpc

_PROPAGATOR = TraceContextTextMapPropagator()

logger = logging.getLogger("fluid.telemetry")


def otlp_configured() -> bool:
    """Whether the standard OTEL_* variables ask for OTLP export of traces."""
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_TRACES_EXPORTER", "").lower() == "otlp"
    )


def configure_tracing(service_name: str, *, console: bool = False) -> None:
    """Install a tracer provider for this process unless one is already installed.

    Spans are exported with OTLP over gRPC when the standard ``OTEL_EXPORTER_OTLP_*``
    variables say where (the exporter reads them itself), and printed with ``console``;
    with neither, no provider is installed.
    """
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    if not (otlp_configured() or console):
        # Nothing would receive the spans: the API's no-op tracer still propagates the
        # caller's trace context, and costs nothing per run (it did: about a tenth of
        # history's CPU under load went to recording spans nobody exported).
        return
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    if otlp_configured():
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if console:
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)


def flush_tracing(timeout_seconds: float = 5.0) -> None:
    """Export the spans still buffered (before a process stops)."""
    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is not None:
        force_flush(int(timeout_seconds * 1000))


@functools.cache
def _untraced_methods() -> frozenset[str]:
    """RPCs that carry many runs at once (leases, reports, history batches) or stream for a
    long time: they belong to no single run's trace, each run gets its own spans instead
    (execution, history write) parented on the trace stored with it. Tracing them, like
    health checks and reflection, would only add cost to the hot path and noise to the
    traces."""
    # Named by the generated servicers' methods rather than as strings, so renaming one of
    # these RPCs fails type checking instead of quietly tracing it. Imported here: only a
    # process with gRPC interceptors, and so grpc already loaded, asks.
    from fluid.scheduler.v1.dispatcher_pb2_grpc import DispatcherServiceServicer as Dispatcher
    from fluid.scheduler.v1.history_pb2_grpc import HistoryServiceServicer as History

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


def server_interceptors() -> list[grpc.aio.ServerInterceptor[Any, Any]]:
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor(filter_=_traced_rpcs)]  # type: ignore[no-untyped-call]


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors(filter_=_traced_rpcs))  # type: ignore[no-untyped-call]


def current_trace_context() -> dict[str, str]:
    """The active span's W3C context (traceparent, tracestate) to store on a run."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


def run_trace_context() -> dict[str, str]:
    """The trace context to store on a new run: the caller's, or a trace of its own.

    A run always carries a trace id, even when no tracer provider records spans (no
    exporter configured): its log lines and the processes it runs in still share it.
    """
    carrier = current_trace_context()
    if not carrier:
        trace_id = secrets.randbits(128) or 1
        span_id = secrets.randbits(64) or 1
        carrier = {"traceparent": f"00-{trace_id:032x}-{span_id:016x}-01"}
    return carrier


def context_from(carrier: Mapping[str, str]) -> otel_context.Context:
    """The OpenTelemetry context a stored trace context stands for."""
    return _PROPAGATOR.extract(dict(carrier))


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)
