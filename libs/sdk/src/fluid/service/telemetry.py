"""Tracing set-up and the W3C trace context a run carries from queue to history."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import (
    aio_client_interceptors,
    aio_server_interceptor,
    filters,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
# Health checks and reflection are polled constantly; tracing them only adds noise.
_TRACED_RPCS = filters.service_prefix("fluid.")

logger = logging.getLogger("fluid.telemetry")


def configure_tracing(service_name: str, *, console: bool = False) -> None:
    """Install a tracer provider for this process unless one is already installed."""
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    if console:
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)


def server_interceptors() -> list[grpc.aio.ServerInterceptor[Any, Any]]:
    return [aio_server_interceptor(filter_=_TRACED_RPCS)]  # type: ignore[no-untyped-call]


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    return list(aio_client_interceptors(filter_=_TRACED_RPCS))  # type: ignore[no-untyped-call]


def current_trace_context() -> dict[str, str]:
    """The active span's W3C context (traceparent, tracestate) to store on a run."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


def context_from(carrier: Mapping[str, str]) -> otel_context.Context:
    """The OpenTelemetry context a stored trace context stands for."""
    return _PROPAGATOR.extract(dict(carrier))


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)
