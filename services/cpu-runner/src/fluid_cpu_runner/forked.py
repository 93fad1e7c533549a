"""The warm-fork side of the local backend: what runs in a process forked per run.

The forkserver (``multiprocessing``'s, started by the runner with the task modules
preloaded) forks one process per run; ``run_forked`` turns that fork into the same kind
of process a fresh interpreter would be: its own session (so the runner can signal the
whole group), stdout and stderr on the runner's pipes, the run's environment, and the
same control-socket exchange as ``python -m fluid_cpu_runner.child``.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping
from multiprocessing import reduction
from typing import Any

from .child import configure_child_logging, configure_child_tracing, serve_control


class InheritedFd:
    """A file descriptor handed to a forked process.

    Pickled while ``multiprocessing`` launches the process, it registers the descriptor
    to travel over the forkserver's socket (``SCM_RIGHTS``); the fork gets its own copy.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _received_fd, (reduction.DupFd(self.fd),)


def _received_fd(handle: Any) -> InheritedFd:
    return InheritedFd(handle.detach())


def warm_up() -> None:
    """A no-op run: starting one proves the forkserver has finished its imports."""


def run_forked(
    control: InheritedFd, stdout: InheritedFd, stderr: InheritedFd, environment: Mapping[str, str]
) -> None:
    """The target of the forked process: become the run's process and serve the run."""
    # Before anything else, so nothing the task starts escapes the runner's killpg.
    os.setsid()
    for stream, target in ((stdout, 1), (stderr, 2)):
        os.dup2(stream.fd, target)
        os.close(stream.fd)
    for text in (sys.stdout, sys.stderr):
        # A pipe makes Python block-buffer; lines must reach the runner as they are written.
        if isinstance(text, io.TextIOWrapper):
            text.reconfigure(line_buffering=True)
    os.environ.update(environment)
    configure_child_logging()
    configure_child_tracing()
    sys.exit(serve_control(control.fd))
