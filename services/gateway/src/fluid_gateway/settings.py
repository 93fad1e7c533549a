"""Gateway settings (``FLUID_HTTP_*``)."""

from __future__ import annotations

from pydantic import Field

from fluid.service.settings import FluidBaseSettings


class GatewaySettings(FluidBaseSettings):
    """Where the HTTP server listens; the gRPC port (health) is the host's."""

    # Empty: the host's own interface (FLUID_HOST, loopback by default).
    http_host: str = ""
    # 0 picks a free port (tests); the URL is logged either way.
    http_port: int = Field(default=8080, ge=0, le=65535)
