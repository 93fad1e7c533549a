"""Composition root of the cpu-runner: task modules, backend, dispatcher channel, worker.

The shared ``LeasingWorker`` leases cpu-bound runs, heartbeats them and reports their
reports; this service only decides where a run executes (``Backend``) and wraps each
execution in a span, whose context the run's process inherits.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import grpc

from fluid.scheduler.execution import run_span
from fluid.scheduler.loader import load_tasks
from fluid.scheduler.models import RunReport, WorkerKind
from fluid.scheduler.run import Run
from fluid.scheduler.task import Task
from fluid.service.channel import open_channel
from fluid.service.host import ServiceContext
from fluid.service.telemetry import current_trace_context
from fluid.service.worker import LeasingWorker

from .backend import Backend
from .local import LocalBackend, launcher_for
from .settings import CpuRunnerSettings, KubernetesSettings

logger = logging.getLogger("fluid.cpu_runner")


def create_backend(
    settings: CpuRunnerSettings, task_modules: list[str], dispatcher_address: str
) -> Backend:
    if settings.cpu_backend == "kubernetes":
        # Imported only here: the kubernetes client takes a second to import.
        from .k8s_backend import KubernetesBackend

        return KubernetesBackend(
            KubernetesSettings(),
            dispatcher_address=dispatcher_address,
            output_lines=settings.output_tail_lines,
        )
    return LocalBackend(
        launcher_for(settings.cpu_mode, task_modules),
        dispatcher_address=dispatcher_address,
        kill_grace=settings.cpu_kill_grace_seconds,
        output_lines=settings.output_tail_lines,
        task_token=settings.task_token.get_secret_value(),
    )


class CpuRunnerService:
    name = "cpu-runner"

    def __init__(
        self,
        context: ServiceContext,
        settings: CpuRunnerSettings | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.settings = settings or CpuRunnerSettings()
        self.modules = list(context.task_modules) or self.settings.task_modules
        if not self.modules:
            raise ValueError("cpu-runner needs task modules: --tasks MODULE or FLUID_TASK_MODULES")
        self.tasks = load_tasks(self.modules)
        self.context = context
        self.backend = backend or create_backend(
            self.settings, self.modules, context.clients.dispatcher
        )
        self.worker: LeasingWorker | None = None
        self._channel: grpc.aio.Channel | None = None

    def attach(self, server: grpc.aio.Server) -> list[str]:
        return []  # the runner serves only health and reflection

    async def _execute(self, task: Task, run: Run) -> RunReport:
        with run_span(
            "fluid.cpu_runner",
            f"cpu-run {task.name}",
            run,
            **{"fluid.cpu_backend": self.backend.name},
        ) as span:
            # The process's own span ("run <task>") hangs under this one. A runner-side
            # error (no fork server, the API refused the Job) ends the attempt as a failure
            # in the worker runtime.
            report = await self.backend.execute(
                task, replace(run, trace_context=current_trace_context())
            )
            span.set_attribute("fluid.state", str(report.state))
            return report

    async def start(self) -> None:
        await self.backend.start()
        clients = self.context.clients
        self._channel = open_channel(clients.dispatcher, clients.token.get_secret_value())
        self.worker = LeasingWorker.over(
            self._channel,
            self._execute,
            self.tasks,
            kind=WorkerKind.cpu,
            concurrency=self.settings.concurrency,
            settings=self.settings,
        )
        await self.worker.start()

    async def stop(self, grace: float) -> None:
        if self.worker is not None:
            await self.worker.stop(grace)
        await self.backend.stop()
        if self._channel is not None:
            await self._channel.close(None)


def create_service(context: ServiceContext) -> CpuRunnerService:
    return CpuRunnerService(context)
