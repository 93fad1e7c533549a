"""Following a Job's pod log while the run executes, line by line, into the run's output.

The official client streams ``follow=true`` logs through a blocking read: each follower
reads in a thread of its own (a run can last hours, and the event loop's shared
executor is for short calls) and hands every line to the event loop. The line after
``REPORT_MARKER`` is the run's report and the first ``STARTED_MARKER`` line says when the
task function started: both are kept apart rather than logged.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from kubernetes import client

from .handoff import REPORT_MARKER, STARTED_MARKER
from .output import MAX_BUFFERED_LINE, RunOutput

logger = logging.getLogger("fluid.cpu_runner.k8s")

# The API's answer while the pod's container has not started yet.
_NOT_STARTED = 400
_CHUNK = 64 * 1024


class PodLogFollower:
    """Streams the log of one Job's pod into ``output`` until its container ends."""

    def __init__(
        self,
        core: client.CoreV1Api,
        *,
        namespace: str,
        container: str,
        selector: str,
        output: RunOutput,
        poll_interval: float,
    ) -> None:
        self.core = core
        self.namespace = namespace
        self.container = container
        self.selector = selector
        self.output = output
        self.poll_interval = poll_interval
        self.report_line: str | None = None
        # The loop's time when the log said the task function started.
        self.started_at: float | None = None
        self.streamed = False
        self._response: Any = None
        self._closed = threading.Event()

    async def follow(self) -> None:
        """Wait for the pod's container to start, then relay its log until it ends."""
        while not self._closed.is_set():
            pod = await asyncio.to_thread(self._pod_name)
            if pod is not None:
                try:
                    await self._stream(pod)
                    return
                except client.ApiException as error:
                    if error.status != _NOT_STARTED:
                        raise
            await asyncio.sleep(self.poll_interval)

    def close(self) -> None:
        """Stop following: the reading thread ends with the connection."""
        self._closed.set()
        response = self._response
        if response is not None:
            response.close()

    def _pod_name(self) -> str | None:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=self.selector)
        if not pods.items or pods.items[-1].metadata is None:
            return None
        name: str | None = pods.items[-1].metadata.name
        return name

    async def _stream(self, pod: str) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def settle(error: BaseException | None) -> None:
            if done.done():
                return
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

        def read() -> None:
            try:
                self._read(pod, loop)
            except BaseException as error:  # handed to the loop, where follow() decides
                loop.call_soon_threadsafe(settle, error)
            else:
                loop.call_soon_threadsafe(settle, None)

        threading.Thread(target=read, name=f"pod-log-{pod}", daemon=True).start()
        await done

    def _read(self, pod: str, loop: asyncio.AbstractEventLoop) -> None:
        # A urllib3 response, not the str the client's annotations promise: not preloaded.
        response: Any = self.core.read_namespaced_pod_log(
            pod,
            self.namespace,
            container=self.container,
            follow=True,
            _preload_content=False,
        )
        self._response = response
        if self._closed.is_set():
            response.close()
            return
        pending = b""
        try:
            # read1: what has arrived, as it arrives (read would wait for a full chunk).
            while chunk := response.read1(_CHUNK):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                if len(pending) >= MAX_BUFFERED_LINE:
                    lines.append(pending)
                    pending = b""
                for line in lines:
                    loop.call_soon_threadsafe(self._line, line.decode(errors="replace"))
        except Exception:
            if not self._closed.is_set():
                raise
        finally:
            response.release_conn()
        if pending:
            loop.call_soon_threadsafe(self._line, pending.decode(errors="replace"))

    def _line(self, text: str) -> None:
        self.streamed = True
        text = text.rstrip("\r")
        if text.startswith(REPORT_MARKER):
            self.report_line = text[len(REPORT_MARKER) :]
        elif text == STARTED_MARKER and self.started_at is None:
            self.started_at = asyncio.get_running_loop().time()
        else:
            self.output.line("log", text)
