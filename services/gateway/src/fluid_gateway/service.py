"""Composition root of the gateway: a client of the system, the routes, a uvicorn server.

The app is ``task_manager_fastapi`` over a task manager bound to the system, with the db
plugin (``/tasks-history``) and fluid's own run routes. The server runs on the host's
event loop, so one process can hold the gateway beside the other services (``fluid dev``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from typing import Any

import grpc
import uvicorn
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from fluid.scheduler.client import Client
from fluid.scheduler.db import TaskDbPlugin
from fluid.scheduler.http import (
    dead_letter_routes,
    event_routes,
    run_routes,
    system_routes,
    task_manager_fastapi,
)
from fluid.scheduler.manager import TaskManager
from fluid.service.auth import forwarded_token
from fluid.service.host import ServiceContext
from fluid.service.settings import ServerSettings

from .settings import GatewaySettings

logger = logging.getLogger("fluid.gateway")

# The dashboard, built from ../../dashboard by `make dashboard` and committed.
STATIC = Path(__file__).parent / "static"


class ForwardCallerToken:
    """ASGI middleware: the request's ``Authorization: Bearer`` token is the one the
    gateway's calls send (``forwarded_token``), so each caller acts with their own roles
    and the gateway has none of its own to lend. No header: the calls carry no token, which
    a system with auth answers UNAUTHENTICATED (401)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        scoped = forwarded_token.set(token.strip() if scheme.lower() == "bearer" else "")
        try:
            await self.app(scope, receive, send)
        finally:
            forwarded_token.reset(scoped)


def create_app(client: Client) -> FastAPI:
    """The gateway's app over ``client`` (a forwarding one): the seed's routes, history,
    fluid's run and dead-letter routes."""
    manager = TaskManager.bound(client, {})
    manager.with_plugin(TaskDbPlugin())
    app = task_manager_fastapi(
        manager,
        app=FastAPI(
            title="fluid gateway",
            description="The seed's task routes and fluid's run routes, over gRPC.",
        ),
    )
    # Before run_routes: /runs/events is the feed, not a run named "events".
    app.include_router(event_routes())
    app.include_router(run_routes())
    app.include_router(dead_letter_routes())
    app.include_router(system_routes())
    serve_dashboard(app)
    app.add_middleware(ForwardCallerToken)
    return app


class RevalidatedFiles(StaticFiles):
    """Static files a browser checks again (ETag) before each use: the bundle's names never
    change, so a rebuilt one is picked up on the next load."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def serve_dashboard(app: FastAPI) -> None:
    """The dashboard's page at ``/`` and its bundle under ``/assets/``: paths no JSON route
    uses, and left out of the OpenAPI schema."""

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/assets", RevalidatedFiles(directory=STATIC / "assets"), name="assets")


class GatewayService:
    name = "gateway"

    def __init__(self, context: ServiceContext, settings: GatewaySettings | None = None) -> None:
        self.settings = settings or GatewaySettings()
        self.context = context
        self.client = Client(settings=context.clients, forwarding=True)
        self.app = create_app(self.client)
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._serving: asyncio.Task[None] | None = None

    def attach(self, server: grpc.aio.Server) -> list[str]:
        return []  # the gateway serves HTTP; its gRPC port answers health only

    async def start(self) -> None:
        host = self.settings.http_host or ServerSettings().host
        # Bound here, before uvicorn starts: a port in use fails the start at once, and
        # port 0 tells its number.
        listener = socket.create_server((host, self.settings.http_port), reuse_port=False)
        port = listener.getsockname()[1]
        config = uvicorn.Config(self.app, log_config=None, lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._serving = asyncio.create_task(self._server.serve(sockets=[listener]))
        while not self._server.started:
            if self._serving.done():
                await self._serving  # raises what stopped it
                raise OSError(f"the gateway stopped while starting on {host}:{port}")
            await asyncio.sleep(0.01)
        self.url = f"http://{host}:{port}"
        logger.info("gateway serving HTTP on %s (API docs at /docs)", self.url)

    async def stop(self, grace: float) -> None:
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            try:
                await asyncio.wait_for(self._serving, timeout=grace + 1)
            except TimeoutError:
                self._server.force_exit = True
                await asyncio.wait_for(self._serving, timeout=5)
        await self.client.close()


def create_service(context: ServiceContext) -> GatewayService:
    return GatewayService(context)
