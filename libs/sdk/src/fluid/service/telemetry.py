"""Tracing set-up and the W3C trace context a run carries from queue to history.

The tracer provider and gRPC instrumentation load on first use: a cpu-bound run's fresh
process imports this module for ``context_from`` and should not pay for grpc with it.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterable, Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
_FIELDS = frozenset(_PROPAGATOR.fields)

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


# What the API answers while no provider is installed: a proxy until one is set, or no-op.
_NOT_RECORDING = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)


def spans_recorded() -> bool:
    """Whether this process records spans: a tracer provider is installed, by
    configure_tracing or by the application. Asked per call, as one may be installed after
    a channel or server was made."""
    return not isinstance(trace.get_tracer_provider(), _NOT_RECORDING)


def caller_trace_context(metadata: Iterable[tuple[str, str | bytes]] | None) -> dict[str, str]:
    """The trace a call belongs to, to store on the runs it queues: the server span's while
    spans are recorded, else the caller's as its metadata carries it (read back through the
    propagator, so only a well-formed context is kept); {} outside any trace."""
    carrier = current_trace_context()
    if carrier or not metadata:
        return carrier
    sent = {key: value for key, value in metadata if key in _FIELDS and isinstance(value, str)}
    if not sent:
        return {}
    carrier = {}
    _PROPAGATOR.inject(carrier, context=_PROPAGATOR.extract(sent))
    return carrier


def current_trace_context() -> dict[str, str]:
    """The active span's W3C context (traceparent, tracestate) to store on a run."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


def new_trace_context() -> dict[str, str]:
    """A trace of its own, for a run queued outside any trace (``caller_trace_context`` is
    empty): a run always carries a trace id, even when no tracer provider records spans
    (no exporter configured), so its log lines and the processes it runs in share it."""
    trace_id = secrets.randbits(128) or 1
    span_id = secrets.randbits(64) or 1
    return {"traceparent": f"00-{trace_id:032x}-{span_id:016x}-01"}


def context_from(carrier: Mapping[str, str]) -> otel_context.Context:
    """The OpenTelemetry context a stored trace context stands for."""
    return _PROPAGATOR.extract(dict(carrier))


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)
