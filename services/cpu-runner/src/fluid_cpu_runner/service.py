"""Composition root of the cpu-runner: task modules, backend, dispatcher channel, worker.

The shared ``LeasingWorker`` leases cpu-bound runs, heartbeats them and reports their
reports; this service only decides where a run executes (``Backend``) and wraps each
execution in a span, whose context the run's process inherits.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import TYPE_CHECKING

import grpc

from fluid.scheduler.execution import run_span
from fluid.scheduler.loader import load_tasks
from fluid.scheduler.manager import TaskManager
from fluid.scheduler.models import RunReport, WorkerKind
from fluid.scheduler.run import Run
from fluid.scheduler.task import Task
from fluid.service.channel import open_channel
from fluid.service.host import ServiceContext
from fluid.service.settings import ClientSettings
from fluid.service.telemetry import current_trace_context
from fluid.service.worker import LeasingWorker

from .backend import Backend
from .local import LocalBackend, launcher_for
from .settings import IN_CLUSTER_ENV, CpuRunnerSettings, KubernetesSettings

if TYPE_CHECKING:
    from .k8s_backend import KubernetesBackend

logger = logging.getLogger("fluid.cpu_runner")


def _local_backend(
    settings: CpuRunnerSettings, task_modules: list[str], clients: ClientSettings
) -> LocalBackend:
    return LocalBackend(
        launcher_for(settings.cpu_mode, task_modules),
        clients=clients,
        kill_grace=settings.cpu_kill_grace_seconds,
        startup_seconds=settings.cpu_startup_seconds,
        output_lines=settings.output_tail_lines,
        task_token=settings.task_token.get_secret_value(),
    )


def _kubernetes_backend(settings: CpuRunnerSettings, clients: ClientSettings) -> KubernetesBackend:
    # Imported only here: the kubernetes client takes a second to import.
    from .k8s_backend import KubernetesBackend

    return KubernetesBackend(
        KubernetesSettings(), clients=clients, output_lines=settings.output_tail_lines
    )


async def start_backend(
    settings: CpuRunnerSettings, task_modules: list[str], clients: ClientSettings
) -> Backend:
    """The backend ``FLUID_CPU_BACKEND`` names, started; a log line says which and why."""
    if settings.cpu_backend == "auto":
        return await _start_chosen_backend(settings, task_modules, clients)
    backend: Backend
    if settings.cpu_backend == "kubernetes":
        backend, kind = _kubernetes_backend(settings, clients), "Kubernetes Jobs"
    else:
        backend, kind = _local_backend(settings, task_modules, clients), "local processes"
    await backend.start()
    logger.info("cpu runs are %s (FLUID_CPU_BACKEND=%s)", kind, settings.cpu_backend)
    return backend


async def _start_chosen_backend(
    settings: CpuRunnerSettings, task_modules: list[str], clients: ClientSettings
) -> Backend:
    """``auto``: Jobs in a cluster whose pod template can be read (read once, now), else
    local processes."""
    if IN_CLUSTER_ENV in os.environ:
        kubernetes = _kubernetes_backend(settings, clients)
        problem = await kubernetes.probe()
        if problem is None:
            logger.info(
                "cpu runs are Kubernetes Jobs (FLUID_CPU_BACKEND=auto: in a cluster, and "
                "deployment %s can be read)",
                kubernetes.deployment_name,
            )
            return kubernetes
        # A warning: in a cluster, Jobs were most likely meant.
        logger.warning(
            "cpu runs are local processes (FLUID_CPU_BACKEND=auto): in a cluster, but %s",
            problem,
        )
    else:
        logger.info(
            "cpu runs are local processes (FLUID_CPU_BACKEND=auto: not in a Kubernetes "
            "cluster, %s is not set)",
            IN_CLUSTER_ENV,
        )
    local = _local_backend(settings, task_modules, clients)
    await local.start()
    return local


class CpuRunnerService:
    name = "cpu-runner"

    def __init__(
        self,
        context: ServiceContext,
        settings: CpuRunnerSettings | None = None,
    ) -> None:
        self.settings = settings or CpuRunnerSettings()
        self.modules = list(context.task_modules) or self.settings.task_modules
        if not self.modules:
            raise ValueError("cpu-runner needs task modules: --tasks MODULE or FLUID_TASK_MODULES")
        self.tasks = load_tasks(self.modules)
        self.context = context
        # Chosen at start: FLUID_CPU_BACKEND=auto may ask the Kubernetes API.
        self.backend: Backend | None = None
        self.worker: LeasingWorker | None = None
        self._channel: grpc.aio.Channel | None = None
        # Its handlers hear the runs' states here, in the runner (the run's own process
        # has a manager of its own for ctx.task_manager).
        self.manager = TaskManager.of_service(context.task_manager, None, self.tasks)

    def attach(self, server: grpc.aio.Server) -> list[str]:
        return []  # the runner serves only health and reflection

    async def _execute(self, task: Task, run: Run) -> RunReport:
        assert self.backend is not None, "started"
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
        await self.manager.startup()
        self.backend = await start_backend(self.settings, self.modules, self.context.clients)
        clients = self.context.clients
        self._channel = open_channel(clients.dispatcher, clients.token.get_secret_value())
        self.worker = LeasingWorker.over(
            self._channel,
            self._execute,
            self.tasks,
            kind=WorkerKind.cpu,
            concurrency=self.settings.cpu_concurrency or self.backend.default_concurrency,
            settings=self.settings,
            lifecycle=self.manager,
        )
        await self.worker.start()

    async def stop(self, grace: float) -> None:
        if self.worker is not None:
            await self.worker.stop(grace)
        if self.backend is not None:
            await self.backend.stop()
        if self._channel is not None:
            await self._channel.close(None)
        if self.manager is not self.context.task_manager:
            await self.manager.shutdown()


def create_service(context: ServiceContext) -> CpuRunnerService:
    return CpuRunnerService(context)
