"""The warm parent of forked cpu-bound runs, and what each fork does.

``python -m fluid_cpu_runner.forkserver --channel-fd N MODULE...`` imports the task
modules once, says ``ready``, then forks one process per request that arrives on the
channel (a ``SOCK_SEQPACKET`` socket shared with the runner, one message per datagram):

- runner -> server: ``{"env": {...}}`` with the run's control socket, stdout and stderr
  attached (``SCM_RIGHTS``);
- server -> runner: ``{"pid": P}`` once forked, ``{"pid": P, "status": S}`` once reaped
  (S as ``Popen.returncode``: negative when a signal killed it), or ``{"error": "..."}``
  when the modules did not import.

The fork becomes the same kind of process a fresh interpreter would be (its own session,
the runner's pipes as stdout/stderr, the run's environment) and runs the same control
socket exchange as ``python -m fluid_cpu_runner.child``. The server ends when the
runner's end of the channel closes.

Not ``multiprocessing``'s forkserver: on Python 3.11 each of its forks re-runs the
parent's main script (its ``__main__`` preload never takes effect), which for the
``fluid`` console script means importing the whole CLI per run.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import selectors
import signal
import socket
import sys
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

from fluid.scheduler.models import RunError, RunReport, TaskState
from fluid.scheduler.run import Run, utcnow

from .child import configure_child_logging, configure_child_tracing, exit_now, serve_control
from .handoff import Handoff, decode_handoff, decode_report, encode_handoff, encode_report

MAX_MESSAGE = 1024 * 1024
"""Bytes of one channel message: the run's environment is the biggest part."""
FDS_PER_RUN = 3


def send_message(
    channel: socket.socket, message: Mapping[str, Any], fds: Sequence[int] = ()
) -> None:
    data = json.dumps(message, separators=(",", ":")).encode()
    if fds:
        socket.send_fds(channel, [data], list(fds))
    else:
        channel.send(data)


def become_run_process(
    control: int, stdout: int, stderr: int, environment: Mapping[str, str]
) -> int:
    """In the fork: take the run's pipes and environment, then serve the run."""
    # Before anything else, so nothing the task starts escapes the runner's killpg.
    os.setsid()
    for stream, target in ((stdout, 1), (stderr, 2)):
        os.dup2(stream, target)
        os.close(stream)
    for text in (sys.stdout, sys.stderr):
        # A pipe makes Python block-buffer; lines must reach the runner as they are written.
        if isinstance(text, io.TextIOWrapper):
            text.reconfigure(line_buffering=True)
    os.environ.update(environment)
    configure_child_logging()
    configure_child_tracing()
    return serve_control(control)


def warm_up() -> None:
    """Do once here what every fork would otherwise do for the first time.

    Protobuf builds its JSON (de)serialisation of a message type on first use, which cost
    each fork ~8 ms to read its hand-off; a full round of the hand-off formats builds it here.
    """
    run = Run(
        id="warm-up",
        task="warm-up",
        params={"number": 1, "text": "", "list": [1.5], "map": {"flag": True}},
        queued=utcnow(),
        start=utcnow(),
        execute_after=utcnow(),
        tags=frozenset({"warm-up"}),
        trace_context={"traceparent": "00-" + "1" * 32 + "-" + "1" * 16 + "-01"},
    )
    decode_handoff(encode_handoff(Handoff(module="warm_up", run=run)))
    failure = RunError("WarmUp", "warm-up", "Traceback")
    for report in (
        RunReport(TaskState.success, result={"warm": [1, "up"]}, output_tail=("line",)),
        RunReport(TaskState.failure, error=failure),
        RunReport(TaskState.aborted, reason="warm-up"),
    ):
        decode_report(encode_report(run, report))


class ForkServer:
    """The server's loop: fork on request, report each fork's exit status."""

    def __init__(self, channel: socket.socket) -> None:
        self.channel = channel
        self.children: set[int] = set()
        self._wake_read, self._wake_write = socket.socketpair()

    def serve(self) -> None:
        for end in (self._wake_read, self._wake_write):
            end.setblocking(False)
        # SIGCHLD only writes to the wake-up socket: children are reaped in the loop.
        signal.set_wakeup_fd(self._wake_write.fileno())
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        with selectors.DefaultSelector() as selector:
            selector.register(self.channel, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fileobj is self._wake_read:
                        with contextlib.suppress(BlockingIOError):
                            self._wake_read.recv(4096)
                        self._reap()
                    elif not self._fork_requested():
                        return

    def _fork_requested(self) -> bool:
        """Fork for one request; False once the runner has gone."""
        try:
            data, fds, _, _ = socket.recv_fds(self.channel, MAX_MESSAGE, FDS_PER_RUN)
        except ConnectionError:
            return False
        if not data:
            return False
        try:
            environment = json.loads(data)["env"]
            control, stdout, stderr = fds
        except (ValueError, KeyError, TypeError) as exc:
            for fd in fds:
                os.close(fd)
            send_message(self.channel, {"error": f"bad fork request: {exc}"})
            return True
        pid = os.fork()
        if pid == 0:
            exit_now(self._run_in_fork(control, stdout, stderr, environment))
        for fd in fds:
            os.close(fd)
        self.children.add(pid)
        send_message(self.channel, {"pid": pid})
        return True

    def _run_in_fork(
        self, control: int, stdout: int, stderr: int, environment: Mapping[str, str]
    ) -> int:
        """The fork's exit status; whatever happens, it never returns into the server loop."""
        try:
            self._in_fork()
            return become_run_process(control, stdout, stderr, environment)
        except SystemExit as stop:  # SIGTERM (timeout, abort) unwinds the task this way
            return stop.code if isinstance(stop.code, int) else 1
        except BaseException:  # what the run's stderr says is all the runner will see
            traceback.print_exc()
            return 1

    def _in_fork(self) -> None:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for end in (self.channel, self._wake_read, self._wake_write):
            end.close()

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            send_message(self.channel, {"pid": pid, "status": os.waitstatus_to_exitcode(status)})


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] != ["--channel-fd"] or len(args) < 2:
        print(
            "usage: python -m fluid_cpu_runner.forkserver --channel-fd FD MODULE...",
            file=sys.stderr,
        )
        return 2
    # Ctrl-C in `fluid dev` reaches the whole terminal's group: the runner decides when
    # this server ends (by closing the channel), and the runs are in their own sessions.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = socket.socket(fileno=int(args[1]))
    try:
        for module in args[2:]:
            importlib.import_module(module)
    except Exception as exc:  # whatever the import raised, the runner must hear it
        send_message(channel, {"error": f"importing the task modules failed: {exc!r}"})
        return 1
    warm_up()
    send_message(channel, {"ready": True})
    ForkServer(channel).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
