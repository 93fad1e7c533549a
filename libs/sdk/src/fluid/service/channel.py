"""gRPC channels between fluid processes, with tracing, keepalive and balancing set once."""

from __future__ import annotations

import json

import grpc

from .telemetry import client_interceptors

# Long polls (LeaseRuns, WatchRun) sit idle for seconds: keepalive pings notice a dead
# peer without waiting for the kernel's TCP timeout.
CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 32 * 1024 * 1024),
    # Calls go round the addresses the name resolves to, not all to the first: behind a
    # headless Service (deploy/k8s) that spreads clients and workers over every dispatcher
    # replica. A name with one address (a ClusterIP, localhost) behaves as before.
    ("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})),
]


def open_channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        address, options=CHANNEL_OPTIONS, interceptors=client_interceptors()
    )
