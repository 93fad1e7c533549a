"""gRPC channels between fluid processes, and the options of the servers they talk to.

Both sides are set here, side by side, because they must agree: a server that refuses
the pings a channel sends drops the connection (GOAWAY ENHANCE_YOUR_CALM
"too_many_pings") with every call on it, and a message one side sends must fit what the
other side takes.
"""

from __future__ import annotations

import json

import grpc

from fluid.scheduler.limits import limits

from .auth import bearer_interceptors
from .grpc_tracing import client_interceptors
from .settings import ClientSettings
from .tls import TlsSettings, create_channel

GrpcOptions = list[tuple[str, int | str]]

# Long polls (LeaseRuns, WatchRun) sit idle for seconds: keepalive pings notice a dead
# peer without waiting for the kernel's TCP timeout. Channels ping this often, and
# servers accept pings this often (server_options): read at call time, so both follow.
KEEPALIVE_TIME_MS = 20_000
KEEPALIVE_TIMEOUT_MS = 10_000
# Servers ping their clients too: a client that vanished without a TCP reset (its node
# gone) has its calls ended, its long polls released, within this plus the timeout.
SERVER_KEEPALIVE_TIME_MS = 30_000

# Calls a server takes while the Python server loop has not picked them up yet. Past
# gRPC's default of 1000 it drops them at random (all past 3000), and the client sees
# CANCELLED: one client with 2,000 calls in flight lost about a tenth of them. Far above
# any burst of ours, still a bound on what an overloaded server holds.
SERVER_MAX_PENDING_CALLS = 10_000

# Needs grpc.enable_retries, on by default (grpcio 1.85 included); off, the policy is
# silently ignored.
_RETRY_POLICY = {
    # gRPC allows at most 5. Waits of 0.2, 0.4, 0.8 and 1.6 s (each ±20%): the last
    # attempt comes after a channel's first reconnection (about 1 s after a refusal), so
    # a server restarting or a connection reset costs the caller a delay, not an error.
    "maxAttempts": 5,
    "initialBackoff": "0.2s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
# Calls that change nothing, and QueueRun(s), which the SDK makes idempotent by giving
# every run an id (fluid.scheduler.client): a retry returns the run the first attempt
# queued. Streams (WatchRun) and the workers' calls (LeaseRuns, ReportRuns, ...)
# are not retried here: the workers' loops retry them with their own backoff.
RETRIED_METHODS = {
    "fluid.scheduler.v1.DispatcherService": (
        "QueueRun",
        "QueueRuns",
        "GetRun",
        "ListTasks",
        "GetQueueStatus",
        "ListDeadLetters",
    ),
    "fluid.scheduler.v1.HistoryService": ("ListRuns", "GetRun"),
    "fluid.scheduler.v1.SchedulerService": ("ListSchedules",),
}
_SERVICE_CONFIG = json.dumps(
    {
        # Calls go round the addresses the name resolves to, not all to the first: behind
        # a headless Service (deploy/k8s) that spreads clients and workers over every
        # dispatcher replica. A name with one address (a ClusterIP, localhost) behaves as
        # before.
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [
                    {"service": service, "method": method}
                    for service, methods in RETRIED_METHODS.items()
                    for method in methods
                ],
                "retryPolicy": _RETRY_POLICY,
            }
        ],
    }
)


def channel_options() -> GrpcOptions:
    message_bytes = limits().message_bytes
    return [
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        # By default a channel stops pinging after two pings with nothing sent between:
        # a long poll idle for minutes would go unwatched after the first 40 s.
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_receive_message_length", message_bytes),
        ("grpc.max_send_message_length", message_bytes),
        ("grpc.service_config", _SERVICE_CONFIG),
    ]


def server_options() -> GrpcOptions:
    message_bytes = limits().message_bytes
    return [
        ("grpc.keepalive_time_ms", SERVER_KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        # Accept exactly what channel_options sends: pings on connections with no call
        # (gRPC's default allows one per 2 h there) and pings every KEEPALIVE_TIME_MS
        # while calls wait (default: one per 5 min). Half the interval is the floor, as
        # timers and the network shift pings a little and an early ping is a strike.
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_TIME_MS // 2),
        # A peer pinging faster than that is not one of our channels: the third early
        # ping (gRPC's default) closes its connection.
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.max_receive_message_length", message_bytes),
        ("grpc.max_send_message_length", message_bytes),
        ("grpc.server.max_pending_requests", SERVER_MAX_PENDING_CALLS),
        ("grpc.server.max_pending_requests_hard_limit", 2 * SERVER_MAX_PENDING_CALLS),
    ]


def open_channel(
    address: str, token: str | None = None, *, forwarding: bool = False
) -> grpc.aio.Channel:
    """A channel to ``address`` whose calls send ``token`` (None: ``FLUID_TOKEN``, if set),
    or with ``forwarding`` the token of the caller each call is made for."""
    if token is None:
        token = ClientSettings().token.get_secret_value()
    interceptors = [*client_interceptors(), *bearer_interceptors(token, forwarding=forwarding)]
    return create_channel(
        address, TlsSettings(), options=channel_options(), interceptors=interceptors
    )
