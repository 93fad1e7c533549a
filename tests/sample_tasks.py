"""Tasks the cross-service tests run: one per behaviour they check."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
from datetime import timedelta
from typing import ClassVar

from pydantic import BaseModel, SecretStr

from fluid.scheduler import (
    RetryPolicy,
    Run,
    TaskManager,
    TaskManagerPlugin,
    TaskRun,
    every,
    task,
)


class Greeting(BaseModel):
    name: str


@task
async def say_hi(ctx: TaskRun[Greeting]) -> str:
    return f"Hi {ctx.params.name}!"


class Vault(BaseModel):
    key: SecretStr
    label: str = ""


class Login(BaseModel):
    user: str
    token: SecretStr
    vault: Vault | None = None


def _digest(secret: SecretStr) -> str:
    return hashlib.sha256(secret.get_secret_value().encode()).hexdigest()


@task
async def login(ctx: TaskRun[Login]) -> dict[str, str]:
    """Digests of the secrets the task received: tests compare them with what they sent,
    and the result (which is not masked) holds no secret."""
    vault = ctx.params.vault
    return {"token": _digest(ctx.params.token), "key": _digest(vault.key) if vault else ""}


@task
async def login_later(ctx: TaskRun[Login]) -> str:
    """Queues ``login`` as a child with its own secrets (as SecretStr): the child's id."""
    child = await ctx.queue(
        login, user=ctx.params.user, token=ctx.params.token, vault=ctx.params.vault
    )
    return child.id


class Failing(BaseModel):
    message: str = "boom"


@task
async def explode(ctx: TaskRun[Failing]) -> None:
    raise ValueError(ctx.params.message)


@task(retry=RetryPolicy(max_attempts=2, wait=0.01))
async def explode_with_retries(ctx: TaskRun[Failing]) -> None:
    raise ValueError(f"{ctx.params.message} on attempt {ctx.attempt}")


@task(retry=RetryPolicy(max_attempts=3, wait=0.01))
async def give_up(ctx: TaskRun) -> None:
    ctx.abort("nothing to do")


@task(timeout_seconds=0.2)
async def too_slow(ctx: TaskRun) -> None:
    await asyncio.sleep(30)


class Nap(BaseModel):
    seconds: float = 0.5


@task(max_concurrency=1)
async def exclusive(ctx: TaskRun[Nap]) -> str:
    await asyncio.sleep(ctx.params.seconds)
    return "done"


@task
async def sleeper(ctx: TaskRun[Nap]) -> str:
    await asyncio.sleep(ctx.params.seconds)
    return "woke up"


@task
async def parent(ctx: TaskRun) -> str:
    child = await ctx.queue("say_hi", name="child")
    return child.id


@task
async def grandparent(ctx: TaskRun) -> str:
    child = await ctx.queue("parent")
    return child.id


@task(tags=("billing",))
async def tagged(ctx: TaskRun) -> int:
    return 42


@task
async def not_json(ctx: TaskRun) -> object:
    return object()


@task(max_queued=3)
async def bounded(ctx: TaskRun) -> str:
    return "done"


class Echo(BaseModel):
    text: str = ""
    times: int = 1
    # Characters appended by code point: what params may not carry (a NUL) a result may.
    codepoints: list[int] = []
    padding: str = ""


@task
async def echo(ctx: TaskRun[Echo]) -> str:
    """Returns ``text`` repeated: results as large (or as odd) as a test needs."""
    return ctx.params.text * ctx.params.times + "".join(map(chr, ctx.params.codepoints))


@task(cpu_bound=True)
async def crunch(ctx: TaskRun) -> int:
    return sum(range(1000))


@task(cpu_bound=True)
async def relay(ctx: TaskRun[Greeting]) -> str:
    """Queues a say_hi from its own process: that process dials the dispatcher itself."""
    child = await ctx.queue("say_hi", name=ctx.params.name)
    return child.id


@task(cpu_bound=True)
async def token_roles(ctx: TaskRun) -> list[str]:
    """The roles of the token the run's own process calls fluid with (unverified read)."""
    token = os.environ.get("FLUID_TOKEN", "")
    if not token:
        return []
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return sorted(claims["roles"])


class Notifications(TaskManagerPlugin):
    """Records the lifecycle events the worker fires, for the lifecycle test: two handlers
    of ``success`` under their own tags (``billing`` keeps only runs tagged billing)."""

    events: ClassVar[list[tuple[str, str]]] = []

    def register(self, task_manager: TaskManager) -> None:
        async def billed(run: Run) -> None:
            if "billing" in run.tags:
                self.events.append(("success.billing", run.id))

        async def succeeded(run: Run) -> None:
            self.events.append(("success.audit", run.id))

        async def started(run: Run) -> None:
            self.events.append(("running", run.id))

        task_manager.register_async_handler("success.billing", billed)
        task_manager.register_async_handler("success.audit", succeeded)
        task_manager.register_async_handler("running", started)


notifications = Notifications()


@task
async def parent_of_cpu(ctx: TaskRun) -> str:
    """An IO task that hands heavy work to a cpu-bound child run."""
    child = await ctx.queue("crunch")
    return child.id


@task(schedule=every(timedelta(seconds=1)))
async def tick(ctx: TaskRun) -> str:
    """Fires every second wherever a scheduler runs (the metrics test reads its lateness)."""
    return "tick"


@task
async def chatty(ctx: TaskRun) -> None:
    """Logs a little: its lines become the run's output tail (`fluid logs`)."""
    ctx.logger.info("starting %s", ctx.id)
    ctx.logger.warning("almost done")
