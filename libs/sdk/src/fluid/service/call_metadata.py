"""What fluid's gRPC interceptors share: their base classes and the headers a client
interceptor adds to a call (a bearer token, a trace context)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    ServerInterceptorBase = grpc.aio.ServerInterceptor[Any, Any]
    UnaryUnaryInterceptor = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
    UnaryStreamInterceptor = grpc.aio.UnaryStreamClientInterceptor[Any, Any]
else:  # generic only in the type stubs
    ServerInterceptorBase = grpc.aio.ServerInterceptor
    UnaryUnaryInterceptor = grpc.aio.UnaryUnaryClientInterceptor
    UnaryStreamInterceptor = grpc.aio.UnaryStreamClientInterceptor


def with_metadata(details: Any, pairs: Iterable[tuple[str, str]]) -> Any:
    """``details`` (a ClientCallDetails) with ``pairs`` added to its metadata."""
    added = list(pairs)
    if not added:
        return details
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    for key, value in added:
        metadata.add(key, value)
    return details._replace(metadata=metadata)
