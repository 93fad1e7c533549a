"""gRPC channels between fluid processes, with tracing and keepalive set once."""

from __future__ import annotations

import grpc

from .telemetry import client_interceptors

# Long polls (LeaseRuns, WatchRun) sit idle for seconds: keepalive pings notice a dead
# peer without waiting for the kernel's TCP timeout.
CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 32 * 1024 * 1024),
]


def open_channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        address, options=CHANNEL_OPTIONS, interceptors=client_interceptors()
    )
