"""The process side of a cpu-bound run: import the task's module, execute, report.

``python -m fluid_cpu_runner.child --control-fd N`` (local backend): the hand-off arrives
on the inherited socket N and the report leaves on it, one JSON line each way, so
stdout and stderr stay the task's own. Without ``--control-fd`` (a Kubernetes Job) the
hand-off is in ``FLUID_RUN_JSON`` and the report is printed as the last line of stdout
after ``REPORT_MARKER``. Either way ``STARTED_MARKER`` comes first, as the task function is
about to start: the runner's timeout counts from it. ``fluid_cpu_runner.forkserver`` calls
``serve_control`` in a process forked from the warm fork server.

The exit status says how the run ended (0 success or aborted, 1 failure) so that a Job's
own status agrees with the run's. Imports stay light: their cost is every run's start-up.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import NoReturn

from fluid.scheduler.execution import execute_run
from fluid.scheduler.loader import TaskModuleError, load_tasks
from fluid.scheduler.manager import TaskManager
from fluid.scheduler.models import RunError, RunReport, TaskState
from fluid.scheduler.run import Run
from fluid.scheduler.task import Task
from fluid.service.telemetry import configure_tracing, otlp_configured

from .handoff import (
    HANDOFF_ENV,
    REPORT_MARKER,
    STARTED_LINE,
    STARTED_MARKER,
    Handoff,
    HandoffError,
    decode_handoff,
    encode_report,
)

logger = logging.getLogger("fluid.cpu_runner.child")


def _terminated(signum: int, frame: FrameType | None) -> None:
    # SIGTERM (timeout or abort) unwinds the task so its finally blocks and context
    # managers run before the runner's SIGKILL.
    raise SystemExit(128 + signum)


def _find_task(handoff: Handoff) -> Task | RunReport:
    try:
        tasks = load_tasks([handoff.module])
    except TaskModuleError as exc:
        return RunReport(TaskState.failure, error=RunError.from_exception(exc))
    task = tasks.get(handoff.run.task)
    if task is None:
        message = f"module {handoff.module} defines no task {handoff.run.task}"
        return RunReport(TaskState.failure, error=RunError("LookupError", message))
    return task


async def _execute(task: Task, run: Run, started: Callable[[], None]) -> RunReport:
    # ctx.task_manager: the module's plugins registered (deps made at start-up), and a
    # client made on first use, since most cpu-bound tasks never queue anything and grpc
    # would load into every run's process for nothing. FLUID_DISPATCHER_ADDRESS, set by
    # the runner, says where the dispatcher is.
    manager = TaskManager.bound(None, {task.name: task})
    try:
        await manager.startup()
    except Exception as exc:
        logger.exception("the task manager of run %s did not start", run.id)
        return RunReport(TaskState.failure, error=RunError.from_exception(exc))
    try:
        started()
        return await execute_run(task, run, manager)
    finally:
        await manager.shutdown()


def execute(handoff: Handoff, started: Callable[[], None]) -> RunReport:
    """Execute one attempt of the hand-off's run in this process.

    ``started`` tells the runner that the task function is about to run: its module is
    imported, so the interpreter's start-up is over.
    """
    signal.signal(signal.SIGTERM, _terminated)
    found = _find_task(handoff)
    if isinstance(found, RunReport):
        return found
    return asyncio.run(_execute(found, handoff.run, started))


def exit_status(report: RunReport) -> int:
    return 1 if report.state is TaskState.failure else 0


def _flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        # The task may have closed or broken its own stream: nothing left to flush then.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


def serve_control(control_fd: int) -> int:
    """Read the hand-off from the control socket, execute it, send the report back."""
    with socket.socket(fileno=control_fd) as control:
        # The task's own subprocesses must not hold the runner's channel open.
        control.set_inheritable(False)
        with control.makefile("rb") as incoming:
            line = incoming.readline()
        handoff = decode_handoff(line.decode())
        report = execute(handoff, lambda: control.sendall(STARTED_LINE))
        _flush_output()
        control.sendall(encode_report(handoff.run, report).encode() + b"\n")
    return exit_status(report)


def serve_environment(environ: Mapping[str, str]) -> int:
    """Execute the hand-off in ``FLUID_RUN_JSON``; print the report as stdout's last line."""
    if HANDOFF_ENV not in environ:
        raise HandoffError(f"{HANDOFF_ENV} is not set")
    handoff = decode_handoff(environ[HANDOFF_ENV])
    report = execute(handoff, lambda: print(STARTED_MARKER, flush=True))
    _flush_output()
    print(REPORT_MARKER + encode_report(handoff.run, report), flush=True)
    return exit_status(report)


def configure_child_logging() -> None:
    """Task logs (``ctx.logger``) go to stderr, which the runner streams line by line."""
    logging.basicConfig(
        level=os.environ.get("FLUID_LOG_LEVEL", "INFO").upper(),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def configure_child_tracing() -> None:
    """Export the run's spans when OTLP is configured (the runner's OTEL_* variables)."""
    if otlp_configured():
        # Only then: the exporter loads grpc, which a run's start-up should not pay for.
        # The provider flushes its spans from an atexit handler, before the process ends.
        configure_tracing("fluid-cpu-task")


def exit_now(code: int) -> NoReturn:
    """End the process without the interpreter's teardown, after the atexit handlers.

    Tearing down every imported module costs a fresh process ~25 ms, longer than a small
    task runs, and the runner waits for the exit; atexit handlers (span exporters,
    logging) still run first.
    """
    atexit._run_exitfuncs()
    _flush_output()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    configure_child_logging()
    configure_child_tracing()
    try:
        if args[:1] == ["--control-fd"] and len(args) == 2:
            exit_now(serve_control(int(args[1])))
        if not args:
            return serve_environment(os.environ)
    except HandoffError as exc:
        logger.error("%s", exc)
        return 2
    print("usage: python -m fluid_cpu_runner.child [--control-fd FD]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
