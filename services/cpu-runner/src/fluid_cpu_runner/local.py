"""The local backend: every cpu-bound run in a process of its own on this machine.

It owns a run's process from start to end: starting it (a fresh interpreter, or a fork
of the warm forkserver), handing it the run over a socket pair, following its stdout and
stderr, taking its outcome, and stopping it. A process is the leader of its own session,
so stopping it signals the whole group: SIGTERM, then SIGKILL after a grace period, and
a final SIGKILL sweep once the leader is gone so no grandchild outlives its run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from fluid.scheduler.models import RunError, RunOutcome, TaskState
from fluid.scheduler.run import Run
from fluid.scheduler.task import Task

from .forked import InheritedFd, run_forked, warm_up
from .handoff import (
    HandoffError,
    RunRequest,
    child_environment,
    decode_outcome,
    encode_request,
)
from .output import RunOutput, with_output

logger = logging.getLogger("fluid.cpu_runner")

# After the process exits, how long its outcome and last output may take to arrive.
_DRAIN_SECONDS = 2.0
# Outcome lines carry results up to the size gRPC accepts.
_MAX_OUTCOME_BYTES = 64 * 1024 * 1024


class RunProcess(Protocol):
    """A started process that executes one run."""

    @property
    def pid(self) -> int: ...

    async def wait(self) -> int:
        """The exit status once it exited (negative: killed by that signal)."""


@dataclass(frozen=True, slots=True)
class ProcessPipes:
    """The child's ends of the channels: control socket, stdout and stderr."""

    control: int
    stdout: int
    stderr: int


class Launcher(Protocol):
    """Starts a run's process: a fresh interpreter or a warm fork."""

    mode: str

    async def start(self) -> None: ...

    async def launch(self, environment: dict[str, str], pipes: ProcessPipes) -> RunProcess: ...


class _Subprocess:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @property
    def pid(self) -> int:
        return self._process.pid

    async def wait(self) -> int:
        return await self._process.wait()


class FreshLauncher:
    """A new interpreter per run: it imports only the run's task module."""

    mode = "fresh"

    async def start(self) -> None:
        return None

    async def launch(self, environment: dict[str, str], pipes: ProcessPipes) -> RunProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fluid_cpu_runner.child",
            "--control-fd",
            str(pipes.control),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=pipes.stdout,
            stderr=pipes.stderr,
            pass_fds=(pipes.control,),
            # A pipe would make the child block-buffer its prints: stream them as written.
            env={**os.environ, **environment, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
        return _Subprocess(process)


class _Forked:
    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self._process = process
        assert process.pid is not None, "started"
        # Kept: the process object is closed once reaped, the group may outlive it.
        self._pid = process.pid

    @property
    def pid(self) -> int:
        return self._pid

    async def wait(self) -> int:
        # The forkserver writes the exit status to the sentinel; wait for it off-loop.
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[None] = loop.create_future()
        sentinel = self._process.sentinel

        def readable() -> None:
            if not exited.done():
                exited.set_result(None)

        loop.add_reader(sentinel, readable)
        try:
            await exited
        finally:
            loop.remove_reader(sentinel)
        self._process.join()
        code = self._process.exitcode
        self._process.close()
        return 255 if code is None else code


class ForkLauncher:
    """A fork of the warm forkserver per run: the task modules are already imported.

    Same isolation as a fresh interpreter (one process per run, killed with its group),
    without paying the imports per run. The environment a forked run gets is applied
    after the fork: variables read at interpreter start-up (``PYTHONPATH`` and the like)
    keep the runner's values.
    """

    mode = "fork"

    def __init__(self, task_modules: Sequence[str]) -> None:
        self._context = multiprocessing.get_context("forkserver")
        # "__main__" first: multiprocessing otherwise re-imports the runner's main
        # script in every fork; the client too, so ctx.queue does not import grpc per run.
        self._preload = [
            "__main__",
            "fluid_cpu_runner.forked",
            "fluid.scheduler.client",
            *task_modules,
        ]

    async def start(self) -> None:
        self._context.set_forkserver_preload(self._preload)
        # The forkserver imports the modules before it forks anything: one throwaway
        # process waits for that (seconds) off the event loop, not in the first run.
        await asyncio.to_thread(self._warm_up)

    def _warm_up(self) -> None:
        process = self._context.Process(target=warm_up, name="fluid-cpu-warm-up")
        process.start()
        process.join()
        process.close()

    async def launch(self, environment: dict[str, str], pipes: ProcessPipes) -> RunProcess:
        process = self._context.Process(
            target=run_forked,
            args=(
                InheritedFd(pipes.control),
                InheritedFd(pipes.stdout),
                InheritedFd(pipes.stderr),
                environment,
            ),
            name="fluid-cpu-run",
        )
        # A few milliseconds with the forkserver running: cheaper inline than in a thread,
        # and multiprocessing's process bookkeeping is not thread-safe.
        process.start()
        return _Forked(process)


def launcher_for(mode: str, task_modules: Sequence[str]) -> Launcher:
    if mode == "fork":
        return ForkLauncher(task_modules)
    return FreshLauncher()


def signal_group(pid: int, signum: int) -> bool:
    """Signal the process group led by ``pid``; False when nothing was left to signal."""
    try:
        os.killpg(pid, signum)
        return True
    except ProcessLookupError:
        pass
    except PermissionError:
        return False
    try:
        # A fork signalled before it became a group leader: signal the process itself.
        os.kill(pid, signum)
        return True
    except (ProcessLookupError, PermissionError):
        return False


async def _exchange(control: socket.socket, request: str) -> str | None:
    """Send the request line; return the outcome line (None: closed without one)."""
    reader, writer = await asyncio.open_unix_connection(sock=control, limit=_MAX_OUTCOME_BYTES)
    try:
        writer.write(request.encode() + b"\n")
        await writer.drain()
        line = await reader.readline()
    except (ConnectionError, ValueError):
        return None  # the process died before reading or in the middle of answering
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return line.decode() if line.endswith(b"\n") else None


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class LocalBackend:
    """Executes each run in its own process and says how the run ended."""

    def __init__(
        self,
        launcher: Launcher,
        *,
        dispatcher_address: str,
        kill_grace: float = 3.0,
        output_lines: int = 50,
    ) -> None:
        self.launcher = launcher
        self.dispatcher_address = dispatcher_address
        self.kill_grace = kill_grace
        self.output_lines = output_lines
        self.name = f"local-{launcher.mode}"

    async def start(self) -> None:
        await self.launcher.start()

    async def stop(self) -> None:
        return None

    async def execute(self, task: Task, run: Run) -> RunOutcome:
        """Run one attempt in a new process; cancelling this kills the process group."""
        output = RunOutput(run.id, task.name, self.output_lines)
        control, child_control = socket.socketpair()
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        try:
            process = await self.launcher.launch(
                child_environment(task, run, self.dispatcher_address),
                ProcessPipes(child_control.fileno(), out_write, err_write),
            )
        except BaseException:
            control.close()
            os.close(out_read)
            os.close(err_read)
            raise
        finally:
            # The child has its copies: holding ours would keep the pipes from ever closing.
            child_control.close()
            os.close(out_write)
            os.close(err_write)
        logger.info("run %s of %s started in process %d", run.id, task.name, process.pid)
        followers = [
            asyncio.create_task(output.follow(out_read, "stdout")),
            asyncio.create_task(output.follow(err_read, "stderr")),
        ]
        request = encode_request(RunRequest(module=task.module, run=run))
        answer = asyncio.create_task(_exchange(control, request))
        exited = asyncio.create_task(process.wait())
        try:
            outcome = await self._supervise(task, run, process, answer, exited)
        finally:
            # Shielded: a second cancellation (shutdown during an abort) must not leave
            # the group running.
            await asyncio.shield(self._finish(process, exited, answer, followers, control))
        return with_output(outcome, output.tail)

    async def _supervise(
        self,
        task: Task,
        run: Run,
        process: RunProcess,
        answer: asyncio.Task[str | None],
        exited: asyncio.Task[int],
    ) -> RunOutcome:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + task.timeout_seconds
        pending: set[asyncio.Task[int] | asyncio.Task[str | None]] = {answer, exited}
        while pending:
            done, pending = await asyncio.wait(
                pending, timeout=deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                logger.warning(
                    "run %s of %s passed its timeout of %gs: stopping process %d",
                    run.id,
                    task.name,
                    task.timeout_seconds,
                    process.pid,
                )
                return RunOutcome(
                    TaskState.failure,
                    error=RunError(
                        "TimeoutError",
                        f"task {task.name} timed out after {task.timeout_seconds:g}s: "
                        "its process was killed",
                    ),
                )
            line = answer.result() if answer in done else None
            if line is not None:
                # Reported: let it exit on its own before _finish signals the group.
                await asyncio.wait([exited], timeout=_DRAIN_SECONDS)
                return self._decode(line)
            if exited in done:
                # The outcome is written before exiting; give the socket a moment to deliver.
                with contextlib.suppress(TimeoutError):
                    late = await asyncio.wait_for(asyncio.shield(answer), _DRAIN_SECONDS)
                    if late is not None:
                        return self._decode(late)
                return self._crashed(exited.result())
        raise AssertionError("unreachable: the process always exits")

    def _decode(self, line: str) -> RunOutcome:
        try:
            return decode_outcome(line)
        except HandoffError as exc:
            return RunOutcome(TaskState.failure, error=RunError("HandoffError", str(exc)))

    def _crashed(self, code: int) -> RunOutcome:
        message = f"the run's process {_describe_exit(code)} without reporting an outcome"
        return RunOutcome(TaskState.failure, error=RunError("ProcessExitError", message))

    async def _finish(
        self,
        process: RunProcess,
        exited: asyncio.Task[int],
        answer: asyncio.Task[str | None],
        followers: list[asyncio.Task[None]],
        control: socket.socket,
    ) -> None:
        if not exited.done():
            signal_group(process.pid, signal.SIGTERM)
            await asyncio.wait([exited], timeout=self.kill_grace)
        if not exited.done():
            logger.warning("process %d ignored SIGTERM: killing it", process.pid)
            signal_group(process.pid, signal.SIGKILL)
            await exited
        # Whatever the task started and left behind goes with the run.
        signal_group(process.pid, signal.SIGKILL)
        await asyncio.wait(followers, timeout=_DRAIN_SECONDS)
        for task in (*followers, answer):
            task.cancel()
        await asyncio.gather(*followers, answer, return_exceptions=True)
        control.close()
