"""Runs one or more fluid services in a gRPC server: health, reflection, tracing,
error mapping, and a graceful stop on SIGTERM.

Services are discovered through the ``fluid.services`` entry point group, so the host
never imports a service and each service stays installable on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from fluid.scheduler.errors import FluidError
from fluid.scheduler.limits import truncated

from .auth import AuthInterceptor, AuthSettings, Verifier
from .call_metadata import ServerInterceptorBase
from .channel import server_options
from .grpc_tracing import server_interceptors
from .metrics import configure_metrics
from .settings import ClientSettings, ServerSettings
from .telemetry import configure_tracing, flush_tracing
from .tls import TlsSettings, add_port

ENTRY_POINT_GROUP = "fluid.services"
logger = logging.getLogger("fluid.host")


@dataclass(frozen=True, slots=True)
class ServiceContext:
    """What the host tells a service when it creates it."""

    clients: ClientSettings
    task_modules: Sequence[str] = ()
    embedded: bool = False
    # The fluid.scheduler.TaskManager whose tasks the worker services execute (a
    # TaskConsumer in this process); None: each builds one bound to the system. Typed
    # object: host plumbing cannot import the programming model.
    task_manager: object | None = None


class Service(Protocol):
    """A fluid service the host can run."""

    name: str

    def attach(self, server: grpc.aio.Server) -> list[str]:
        """Add the gRPC servicers; return their full service names (for health/reflection)."""

    async def start(self) -> None:
        """Start background work; the server is already listening."""

    async def stop(self, grace: float) -> None:
        """Stop taking work and finish what is in flight within ``grace`` seconds."""


ServiceFactory = Callable[[ServiceContext], Service]


def available_services() -> dict[str, EntryPoint]:
    """Installed services by name, in the order they should start (not imported yet)."""
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    # Stores and the queue first, then the processes that consume them.
    order = ["history", "dispatcher", "scheduler", "io-worker", "cpu-runner", "gateway"]
    names = sorted(found, key=lambda n: (order.index(n) if n in order else len(order), n))
    return {name: found[name] for name in names}


def _load(entry: EntryPoint) -> ServiceFactory:
    factory: ServiceFactory = entry.load()
    return factory


_STATUS = {name: getattr(grpc.StatusCode, name) for name in grpc.StatusCode.__members__}


class DomainErrorInterceptor(ServerInterceptorBase):
    """Turns a ``FluidError`` raised by a fluid servicer into its gRPC status, and any
    other exception into INTERNAL: a fluid servicer never answers UNKNOWN."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith("/fluid."):
            return handler
        if handler.unary_unary is not None:
            return handler._replace(  # type: ignore[attr-defined,no-any-return]
                unary_unary=_unary(handler.unary_unary, method)
            )
        if handler.unary_stream is not None:
            return handler._replace(  # type: ignore[attr-defined,no-any-return]
                unary_stream=_streaming(handler.unary_stream, method)  # type: ignore[arg-type]
            )
        return handler


# Status details travel in a header: past ~16 KB gRPC drops the call's status for its own
# RESOURCE_EXHAUSTED, so a message naming many fields (or quoting a long value) is cut.
MAX_STATUS_DETAILS = 4096


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: FluidError) -> None:
    await context.abort(
        _STATUS.get(error.code, grpc.StatusCode.INTERNAL),
        truncated(str(error), MAX_STATUS_DETAILS),
    )


async def _internal(
    context: grpc.aio.ServicerContext[Any, Any], method: str, error: Exception
) -> None:
    # A bug, not the caller's mistake: the details stay in our log (they may name
    # internal addresses), the caller gets INTERNAL rather than UNKNOWN.
    logger.error("%s failed", method, exc_info=error)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method} (logged)")


@contextlib.asynccontextmanager
async def _statuses(context: grpc.aio.ServicerContext[Any, Any], name: str) -> AsyncIterator[None]:
    """Ends the call with the status of what the method raised: a typed error's own code,
    INTERNAL for anything else."""
    try:
        yield
    except FluidError as error:
        await _abort(context, error)
    except (asyncio.CancelledError, grpc.aio.AbortError):
        # context.abort ends a call by raising AbortError: let it through.
        raise
    except Exception as error:
        await _internal(context, name, error)


def _unary(method: Callable[..., Awaitable[Any]], name: str) -> Callable[..., Awaitable[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        async with _statuses(context, name):
            return await method(request, context)

    return call


def _streaming(
    method: Callable[..., AsyncIterator[Any]], name: str
) -> Callable[..., AsyncIterator[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        async with _statuses(context, name):
            async for item in method(request, context):
                yield item

    return call


@dataclass
class Host:
    """One gRPC server running the named services (all of them: embedded mode)."""

    service_names: Sequence[str]
    settings: ServerSettings = field(default_factory=ServerSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    task_modules: Sequence[str] = ()
    clients: ClientSettings | None = None
    task_manager: object | None = None
    port: int = 0
    _server: grpc.aio.Server | None = None
    _services: list[Service] = field(default_factory=list)
    _health: Any = None  # grpc_health ships no types for its asyncio servicer
    _stopped: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.port}"

    async def start(self) -> int:
        """Create, bind and start the server and its services; return the bound port."""
        factories = available_services()
        unknown = [name for name in self.service_names if name not in factories]
        if unknown:
            raise ValueError(
                f"unknown service(s) {', '.join(unknown)}; installed: {', '.join(factories)}"
            )
        service_name = "fluid-" + "+".join(self.service_names)
        configure_tracing(service_name, console=self.settings.trace_console)
        configure_metrics(service_name, self.settings.host, self.settings.metrics_port)
        # Tokens are checked before any servicer runs (and before its errors are mapped).
        guard = (
            [AuthInterceptor(Verifier(self.auth.keys()), reflection_open=self.auth.reflection_open)]
            if self.auth.enabled
            else []
        )
        # Keepalive, message sizes and the call backlog as our channels expect them.
        server = grpc.aio.server(
            interceptors=[*server_interceptors(), *guard, DomainErrorInterceptor()],
            options=server_options(),
        )
        # TLS (mTLS with a CA) when FLUID_TLS_CERT_FILE is set, reloading rotated files.
        self.port = add_port(server, f"{self.settings.host}:{self.settings.port}", TlsSettings())
        if not self.port:
            raise OSError(f"cannot listen on {self.settings.host}:{self.settings.port}")
        # Several services in one server call each other through this very port.
        embedded = len(self.service_names) > 1
        clients = self.clients or (
            ClientSettings(address=self.address) if embedded else ClientSettings()
        )
        context = ServiceContext(
            clients=clients,
            task_modules=tuple(self.task_modules),
            embedded=embedded,
            task_manager=self.task_manager,
        )
        # Only the services asked for are imported: one broken install breaks only itself.
        self._services = [_load(factories[name])(context) for name in self.service_names]
        served = [name for service in self._services for name in service.attach(server)]
        self._health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        # The servicer says SERVING for "" from the start; the services are not started
        # yet (history may be migrating), so probes and waiting clients must hear NOT_SERVING.
        for name in ["", *served]:
            await self._health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        if self.auth.reflection_open:
            reflection.enable_server_reflection(
                [
                    *served,
                    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                    reflection.SERVICE_NAME,
                ],
                server,
            )
        await server.start()
        self._server = server
        try:
            for service in self._services:
                await service.start()
        except BaseException:
            await self.stop()  # leave no half-started server behind
            raise
        for name in ["", *served]:
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        logger.info("serving %s on %s", ", ".join(self.service_names), self.address)
        return self.port

    async def stop(self) -> None:
        """Report NOT_SERVING, drain services (last started first), then stop the server."""
        if self._server is None:
            return
        server, self._server = self._server, None
        grace = self.settings.shutdown_grace_seconds
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        for service in reversed(self._services):
            try:
                await service.stop(grace)
            except Exception:
                logger.exception("service %s did not stop cleanly", service.name)
        await server.stop(grace)
        flush_tracing()
        self._stopped.set()

    async def run_until_signal(self) -> None:
        """Serve until SIGTERM or SIGINT, then stop gracefully."""
        await self.start()
        loop = asyncio.get_running_loop()
        stop_requested = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop_requested.set)
        try:
            await stop_requested.wait()
            logger.info("stopping: draining for up to %ss", self.settings.shutdown_grace_seconds)
        finally:
            await self.stop()
