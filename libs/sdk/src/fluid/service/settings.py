"""Settings every fluid process shares, from ``FLUID_*`` environment variables."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_ADDRESS = "localhost:50051"


class FluidBaseSettings(BaseSettings):
    """Base of every settings class: ``FLUID_`` prefix, unknown variables ignored."""

    model_config = SettingsConfigDict(env_prefix="FLUID_", extra="ignore")


class ClientSettings(FluidBaseSettings):
    """Where the SDK and the services find each other.

    ``dispatcher_address``, ``history_address`` and ``scheduler_address`` default to
    ``address``, which is what lets the one-port embedded mode work with no configuration.
    ``token`` (``FLUID_TOKEN``) is the bearer token every call sends; empty, calls send none.
    """

    address: str = DEFAULT_ADDRESS
    dispatcher_address: str = ""
    history_address: str = ""
    scheduler_address: str = ""
    # A SecretStr so that printing the settings never shows the token.
    token: SecretStr = SecretStr("")

    @property
    def dispatcher(self) -> str:
        return self.dispatcher_address or self.address

    @property
    def history(self) -> str:
        return self.history_address or self.address

    @property
    def scheduler(self) -> str:
        return self.scheduler_address or self.address


task_clients: ContextVar[ClientSettings | None] = ContextVar("fluid_task_clients", default=None)
"""The system a run executing here belongs to: the io-worker sets it around each run, so a
bare ``Client()`` in task code reaches that system rather than what the process environment
says (an embedded system's random port is in no variable). Scoped to the run, it cannot
leak into other systems the same process runs."""


BROKER_SCHEMES = ("memory://", "redis://", "rediss://", "unix://")


class BrokerSettings(FluidBaseSettings):
    """Where the services that share state keep it (``FLUID_BROKER_URL``).

    ``memory://`` keeps it in the process (embedded mode, one replica); a Redis URL
    shares it between replicas, every key under the hash tag ``{namespace}`` so one
    namespace lives in one Redis Cluster slot.
    """

    broker_url: str = "memory://"
    broker_namespace: str = "fluid"

    @field_validator("broker_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(BROKER_SCHEMES):
            raise ValueError(f"unsupported broker {value!r} ({', '.join(BROKER_SCHEMES)})")
        return value

    @property
    def in_memory(self) -> bool:
        return self.broker_url.startswith("memory://")


class ServerSettings(FluidBaseSettings):
    """How a service process listens and stops."""

    host: str = "127.0.0.1"
    port: int = Field(default=50051, ge=0, le=65535)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    log_level: str = "INFO"
    # json for log pipelines (the default of `fluid serve`); pretty for a terminal.
    log_format: Literal["json", "pretty"] = "json"
    trace_console: bool = False
    # Port of the Prometheus /metrics endpoint; 0 turns it off.
    metrics_port: int = Field(default=0, ge=0, le=65535)


class TaskModuleSettings(FluidBaseSettings):
    """Which user modules define the tasks a worker executes."""

    task_modules: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("task_modules", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value


class LeasingSettings(TaskModuleSettings):
    """How a worker of either kind asks the dispatcher for runs and reports them."""

    # Long-poll length: also bounds how long a stopping worker waits for its last poll.
    lease_wait_seconds: float = Field(default=1.0, gt=0)
    report_batch_size: int = Field(default=256, gt=0)
    # How many of the last lines a run printed or logged its report carries as the run's
    # output tail (`fluid logs RUN_ID`); the worker's own log gets every line. Both kinds
    # of worker keep the same tail, so they share the one setting.
    output_tail_lines: int = Field(default=50, ge=0)
    # The token task code calls fluid with (`ctx.queue`, a `Client()` in a task), normally
    # `queue,read`: a worker token would let task code lease anyone's runs. Empty, task
    # code on the worker's machine uses the worker's token and a Kubernetes Job gets none.
    task_token: SecretStr = SecretStr("")

    def task_clients(self, clients: ClientSettings) -> ClientSettings:
        """``clients`` with the task token in place of the worker's, when one is set."""
        if not self.task_token.get_secret_value():
            return clients
        return clients.model_copy(update={"token": self.task_token})
