"""Cpu-bound tasks the cpu-runner tests execute: one per behaviour they check.

The runner imports this module by name, and so does each run's process: the test
fixture puts this folder on ``PYTHONPATH``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

from pydantic import BaseModel

from fluid.scheduler import RetryPolicy, TaskRun, task
from fluid.scheduler.common import is_in_cpu_process


class Probe(BaseModel):
    word: str = ""
    numbers: list[int] = []


@task(cpu_bound=True, env={"CPU_TASK_FLAVOUR": "spicy"})
async def whoami(ctx: TaskRun[Probe]) -> dict[str, object]:
    """Says where it ran and what it got."""
    return {
        "pid": os.getpid(),
        "word": ctx.params.word,
        "total": sum(ctx.params.numbers),
        "in_cpu_process": is_in_cpu_process(),
        "flavour": os.environ.get("CPU_TASK_FLAVOUR"),
        "traceparent": os.environ.get("TRACEPARENT"),
        "grpc_loaded": "grpc" in sys.modules,
        "runner_main_loaded": "pytest" in sys.modules,
    }


class Failing(BaseModel):
    message: str = "boom"


@task(cpu_bound=True)
async def explode(ctx: TaskRun[Failing]) -> None:
    print("about to fail")
    raise ValueError(ctx.params.message)


@task(cpu_bound=True)
async def give_up(ctx: TaskRun) -> None:
    ctx.abort("nothing to do")


def _announce_and_block() -> None:
    # A grandchild in the same process group: it must die with the run.
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    print(f"ready pid={os.getpid()} grandchild={grandchild.pid}", flush=True)
    time.sleep(60)  # blocks the process's event loop, as cpu-bound code does


@task(cpu_bound=True, timeout_seconds=1.5)
async def hang(ctx: TaskRun) -> None:
    _announce_and_block()


@task(cpu_bound=True, timeout_seconds=30)
async def linger(ctx: TaskRun) -> None:
    _announce_and_block()


class Ledger(BaseModel):
    path: str


@task(cpu_bound=True, retry=RetryPolicy(max_attempts=2, wait=0.01))
async def flaky(ctx: TaskRun[Ledger]) -> None:
    # Blocking is fine: a cpu-bound run owns its process and event loop.
    with open(ctx.params.path, "a") as ledger:  # noqa: ASYNC230
        ledger.write(f"{os.getpid()}\n")
    raise RuntimeError(f"attempt {ctx.attempt} failed")


class Lines(BaseModel):
    count: int = 3


@task(cpu_bound=True)
async def chatty(ctx: TaskRun[Lines]) -> int:
    for number in range(ctx.params.count):
        print(f"line {number}")
    print("to stderr", file=sys.stderr)
    ctx.logger.warning("through the task logger")
    return ctx.params.count


@task(cpu_bound=True)
async def crash(ctx: TaskRun) -> None:
    print("last words")
    sys.stdout.flush()
    os._exit(3)


@task(cpu_bound=True)
async def spawn_child(ctx: TaskRun) -> str:
    child = await ctx.queue("whoami", word="from parent")
    return child.id


@task(cpu_bound=True)
async def crunch(ctx: TaskRun) -> int:
    await asyncio.sleep(0)
    return sum(range(1000))


class Work(BaseModel):
    seconds: float


@task(cpu_bound=True, timeout_seconds=2)
async def work_for(ctx: TaskRun[Work]) -> int:
    """Busy CPU work (no sleep: nothing yields) for the given seconds."""
    end = time.perf_counter() + ctx.params.seconds
    rounds = 0
    while time.perf_counter() < end:
        rounds += 1
    return rounds
