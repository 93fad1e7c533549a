"""The local backend: every cpu-bound run in a process of its own on this machine.

It owns a run's process from start to end: starting it (a fresh interpreter, or a fork
of the warm forkserver), handing it the run over a socket pair, following its stdout and
stderr, taking its report, and stopping it. The task's timeout counts from the line the
process sends when the task function starts; before it, ``FLUID_CPU_STARTUP_SECONDS``
bounds the process. A process is the leader of its own session,
so stopping it signals the whole group: SIGTERM, then SIGKILL after a grace period, and
a final SIGKILL sweep once the leader is gone so no grandchild outlives its run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from fluid.scheduler.models import RunError, RunReport, TaskState
from fluid.scheduler.run import Run
from fluid.scheduler.task import Task
from fluid.service.loops import cancel_and_wait

from . import forkserver
from .backend import startup_timed_out
from .handoff import (
    STARTED_LINE,
    Handoff,
    HandoffError,
    child_environment,
    decode_report,
    encode_handoff,
)
from .output import RunOutput, with_output

if TYPE_CHECKING:
    from fluid.service.settings import ClientSettings

logger = logging.getLogger("fluid.cpu_runner")

# After the process exits, how long its report and last output may take to arrive.
_DRAIN_SECONDS = 2.0
# Report lines carry results up to the size gRPC accepts.
_MAX_REPORT_BYTES = 64 * 1024 * 1024
# How long the fork server may take to answer a fork request before it counts as broken.
_FORK_REPLY_SECONDS = 10.0


class RunProcess(Protocol):
    """A started process that executes one run."""

    @property
    def pid(self) -> int: ...

    async def wait(self) -> int:
        """The exit status once it exited (negative: killed by that signal).

        Raises ``ForkServerError`` when no one can tell any more (its fork server died).
        """


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

    async def stop(self) -> None: ...


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

    async def stop(self) -> None:
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
    def __init__(self, pid: int, exited: asyncio.Future[int]) -> None:
        self._pid = pid
        self._exited = exited

    @property
    def pid(self) -> int:
        return self._pid

    async def wait(self) -> int:
        # Shielded: the fork server's report settles it, whoever stops waiting.
        return await asyncio.shield(self._exited)


class ForkServerError(RuntimeError):
    """The warm fork server could not start or fork."""


class ForkLauncher:
    """A fork of the warm fork server per run: the task modules are already imported.

    Same isolation as a fresh interpreter (one process per run, killed with its group),
    without paying the imports per run. The environment a forked run gets is applied
    after the fork: variables read at interpreter start-up (``PYTHONPATH`` and the like)
    keep the runner's values. A fork server that dies is started again by the next run;
    waiting for the forks it had started raises ``ForkServerError``.
    """

    mode = "fork"

    def __init__(self, task_modules: Sequence[str]) -> None:
        # The client too, so ctx.queue does not import grpc per run.
        self._preload = ["fluid.scheduler.client", *task_modules]
        self._channel: socket.socket | None = None
        self._server: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        # Answers to fork requests, in order; a fork's answer comes with its exit future,
        # which the exit report may settle before the launch reads the answer.
        self._replies: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[int] | None]] = (
            asyncio.Queue()
        )
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._lock = asyncio.Lock()

    @property
    def server_pid(self) -> int | None:
        """The fork server's pid while one runs."""
        return self._server.pid if self._server is not None and self._channel else None

    async def start(self) -> None:
        async with self._lock:
            await self._ensure_server()

    async def _ensure_server(self) -> socket.socket:
        if self._channel is not None:
            return self._channel
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._server = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "fluid_cpu_runner.forkserver",
                "--channel-fd",
                str(theirs.fileno()),
                *self._preload,
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        self._channel = ours
        self._replies = asyncio.Queue()
        self._reader = asyncio.create_task(self._read(ours), name="fork-server-replies")
        # The imports take seconds: the first run should not be the one waiting for them.
        ready, _ = await self._replies.get()
        if "ready" not in ready:
            await self._close()
            raise ForkServerError(ready.get("error", "the fork server ended before it was ready"))
        logger.info("fork server %d ready with %s", self._server.pid, ", ".join(self._preload))
        return ours

    async def _read(self, channel: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            while data := await loop.sock_recv(channel, forkserver.MAX_MESSAGE):
                reply = json.loads(data)
                if "status" in reply:
                    exited = self._exits.pop(reply["pid"], None)
                    if exited is not None and not exited.done():
                        exited.set_result(int(reply["status"]))
                elif "pid" in reply:
                    exits = self._exits[reply["pid"]] = loop.create_future()
                    self._replies.put_nowait((reply, exits))
                else:
                    self._replies.put_nowait((reply, None))
        except ConnectionError:
            pass
        self._server_gone(channel)

    def _server_gone(self, channel: socket.socket) -> None:
        channel.close()
        if self._channel is not channel:
            return
        self._channel = None
        self._replies.put_nowait(({"error": "the fork server ended"}, None))
        self._forget_forks()
        logger.error("the fork server ended; the next run starts a new one")

    def _forget_forks(self) -> None:
        # Their exit can no longer be waited for: the backend kills their groups.
        for exited in self._exits.values():
            if not exited.done():
                exited.set_exception(ForkServerError("the fork server ended while the run ran"))
        self._exits.clear()

    async def launch(self, environment: dict[str, str], pipes: ProcessPipes) -> RunProcess:
        # One request at a time: the server answers in order, and the lock says whose.
        fds = [pipes.control, pipes.stdout, pipes.stderr]
        async with self._lock:
            channel = await self._ensure_server()
            try:
                forkserver.send_message(channel, {"env": environment}, fds)
            except OSError:
                # It died since its last reply: its reader is about to read the end.
                if self._reader is not None:
                    await asyncio.wait([self._reader])
                channel = await self._ensure_server()
                forkserver.send_message(channel, {"env": environment}, fds)
            try:
                reply, exits = await asyncio.wait_for(self._replies.get(), _FORK_REPLY_SECONDS)
            except TimeoutError:
                # Stuck: the next run starts a new server.
                await self._close()
                raise ForkServerError("the fork server did not answer") from None
        if exits is None:
            raise ForkServerError(reply.get("error", "the fork server did not fork"))
        return _Forked(int(reply["pid"]), exits)

    async def stop(self) -> None:
        await self._close()

    async def _close(self) -> None:
        if self._reader is not None:
            await cancel_and_wait([self._reader])
            self._reader = None
        if self._channel is not None:
            channel, self._channel = self._channel, None
            channel.close()  # the server ends when it reads the end of the channel
        self._forget_forks()
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait(), _DRAIN_SECONDS)
            except TimeoutError:
                self._server.kill()
                await self._server.wait()
            self._server = None


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


async def _exchange(
    control: socket.socket, handoff: str, started: asyncio.Future[float]
) -> str | None:
    """Send the hand-off line; return the report line (None: closed without one).

    ``started`` gets the loop's time when the process says its task function starts.
    """
    reader, writer = await asyncio.open_unix_connection(sock=control, limit=_MAX_REPORT_BYTES)
    try:
        writer.write(handoff.encode() + b"\n")
        await writer.drain()
        line = await reader.readline()
        # A process that could not load its task reports without having started it.
        if line == STARTED_LINE:
            started.set_result(asyncio.get_running_loop().time())
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
        clients: ClientSettings,
        kill_grace: float = 3.0,
        startup_seconds: float = 30.0,
        output_lines: int = 50,
        task_token: str = "",
    ) -> None:
        self.launcher = launcher
        self.clients = clients
        self.task_token = task_token
        self.kill_grace = kill_grace
        self.startup_seconds = startup_seconds
        self.output_lines = output_lines
        self.name = f"local-{launcher.mode}"
        self.default_concurrency = os.cpu_count() or 1

    async def start(self) -> None:
        await self.launcher.start()

    async def stop(self) -> None:
        await self.launcher.stop()

    async def execute(self, task: Task, run: Run) -> RunReport:
        """Run one attempt in a new process; cancelling this kills the process group."""
        output = RunOutput(run.id, task.name, self.output_lines)
        control, child_control = socket.socketpair()
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        # Sent before the process exists: the socket holds the hand-off, so the process
        # reads it as soon as it starts instead of waiting for this loop to get round to it.
        handoff = encode_handoff(Handoff(module=task.module, run=run))
        started: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        answer = asyncio.create_task(_exchange(control, handoff, started))
        try:
            process = await self.launcher.launch(
                child_environment(task, run, self.clients, self.task_token),
                ProcessPipes(child_control.fileno(), out_write, err_write),
            )
        except BaseException:
            await cancel_and_wait([answer])
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
        exited = asyncio.create_task(process.wait())
        try:
            report = await self._supervise(task, run, process, answer, exited, started)
        finally:
            # Shielded: a second cancellation (shutdown during an abort) must not leave
            # the group running.
            await asyncio.shield(self._finish(process, exited, answer, followers, control))
        return with_output(report, output.tail)

    async def _supervise(
        self,
        task: Task,
        run: Run,
        process: RunProcess,
        answer: asyncio.Task[str | None],
        exited: asyncio.Task[int],
        started: asyncio.Future[float],
    ) -> RunReport:
        loop = asyncio.get_running_loop()
        # The start-up allowance until the task function starts, its timeout from then on.
        deadline = loop.time() + self.startup_seconds
        pending: set[asyncio.Future[Any]] = {answer, exited, started}
        while pending:
            done, pending = await asyncio.wait(
                pending, timeout=deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                return RunReport(
                    TaskState.failure, error=self._overdue(task, run, process, started)
                )
            if started in done:
                deadline = started.result() + task.timeout_seconds
            line = answer.result() if answer in done else None
            if line is not None:
                # Reported: let it exit on its own before _finish signals the group.
                await asyncio.wait([exited], timeout=_DRAIN_SECONDS)
                return self._decode(line)
            if exited in done:
                # The report is written before exiting; give the socket a moment to deliver.
                with contextlib.suppress(TimeoutError):
                    late = await asyncio.wait_for(asyncio.shield(answer), _DRAIN_SECONDS)
                    if late is not None:
                        return self._decode(late)
                return self._crashed(exited.result())
        raise AssertionError("unreachable: the process always exits")

    def _overdue(
        self, task: Task, run: Run, process: RunProcess, started: asyncio.Future[float]
    ) -> RunError:
        if started.done():
            logger.warning(
                "run %s of %s passed its timeout of %gs: stopping process %d",
                run.id,
                task.name,
                task.timeout_seconds,
                process.pid,
            )
            return RunError.timed_out(task.name, task.timeout_seconds, "its process was killed")
        logger.warning(
            "run %s of %s did not start its task within %gs: stopping process %d",
            run.id,
            task.name,
            self.startup_seconds,
            process.pid,
        )
        return startup_timed_out(
            task.name, self.startup_seconds, "FLUID_CPU_STARTUP_SECONDS", "its process was killed"
        )

    def _decode(self, line: str) -> RunReport:
        try:
            return decode_report(line)
        except HandoffError as exc:
            return RunReport(TaskState.failure, error=RunError("HandoffError", str(exc)))

    def _crashed(self, code: int) -> RunReport:
        message = f"the run's process {_describe_exit(code)} without a report"
        return RunReport(TaskState.failure, error=RunError("ProcessExitError", message))

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
            await asyncio.wait([exited])
        # Whatever the task started and left behind goes with the run.
        signal_group(process.pid, signal.SIGKILL)
        await asyncio.wait(followers, timeout=_DRAIN_SECONDS)
        for task in (*followers, answer):
            task.cancel()
        # exited too: a fork whose server died ends in an error already reported.
        await asyncio.gather(*followers, answer, exited, return_exceptions=True)
        control.close()
