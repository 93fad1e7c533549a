"""Composition root of the io-worker: task modules, dispatcher channel, worker loops.

Runs execute on this process's event loop, concurrently, each under its timeout.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import grpc

from fluid.scheduler.client import Client
from fluid.scheduler.execution import execute_run
from fluid.scheduler.loader import load_tasks
from fluid.scheduler.manager import TaskManager
from fluid.scheduler.models import RunReport, WorkerKind
from fluid.scheduler.run import Run
from fluid.scheduler.task import Task
from fluid.service.channel import open_channel
from fluid.service.host import ServiceContext
from fluid.service.logs import RunLogCapture
from fluid.service.settings import task_clients
from fluid.service.worker import LeasingWorker

from .settings import WorkerSettings


class IoWorkerService:
    name = "io-worker"

    def __init__(self, context: ServiceContext, settings: WorkerSettings | None = None) -> None:
        self.settings = settings or WorkerSettings()
        modules = list(context.task_modules) or self.settings.task_modules
        if not modules:
            raise ValueError("io-worker needs task modules: --tasks MODULE or FLUID_TASK_MODULES")
        self.tasks = load_tasks(modules)
        self.context = context
        self.worker: LeasingWorker | None = None
        self._channel: grpc.aio.Channel | None = None
        self._client: Client | None = None
        self._manager: TaskManager | None = None
        self._task_clients = self.context.clients
        self._logs = RunLogCapture(self.settings.output_tail_lines)

    def attach(self, server: grpc.aio.Server) -> list[str]:
        return []  # the worker serves only health and reflection

    async def _execute(self, task: Task, run: Run) -> RunReport:
        assert self._manager is not None, "started"
        # A bare Client() in task code reaches this worker's system (its addresses may be
        # an embedded system's port, not the environment's), for this run only.
        scope = task_clients.set(self._task_clients)
        try:
            with self._logs.capturing(run.id) as tail:
                report = await execute_run(task, run, self._manager)
        finally:
            task_clients.reset(scope)
        # `fluid logs RUN_ID` shows what the run logged (ctx.logger and any logger).
        return replace(report, output_tail=tuple(tail))

    async def start(self) -> None:
        logging.getLogger().addHandler(self._logs)
        clients = self.context.clients
        self._channel = open_channel(clients.dispatcher, clients.token.get_secret_value())
        self._task_clients = self.settings.task_clients(clients)
        self._client = Client(settings=self._task_clients)
        self._manager = TaskManager.of_service(self.context.task_manager, self._client, self.tasks)
        await self._manager.startup()
        self.worker = LeasingWorker.over(
            self._channel,
            self._execute,
            self.tasks,
            kind=WorkerKind.io,
            concurrency=self.settings.worker_concurrency,
            settings=self.settings,
            lifecycle=self._manager,
        )
        await self.worker.start()

    async def stop(self, grace: float) -> None:
        if self.worker is not None:
            await self.worker.stop(grace)
        if self._manager is not None and self._manager is not self.context.task_manager:
            await self._manager.shutdown()
        logging.getLogger().removeHandler(self._logs)
        if self._client is not None:
            await self._client.close()
        if self._channel is not None:
            await self._channel.close(None)


def create_service(context: ServiceContext) -> IoWorkerService:
    return IoWorkerService(context)
