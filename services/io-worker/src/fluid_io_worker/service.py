"""Composition root of the io-worker: task modules, dispatcher channel, worker loops.

Runs execute on this process's event loop, concurrently, each under its timeout.
"""

from __future__ import annotations

import logging
import os
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
from fluid.service.settings import ClientSettings
from fluid.service.worker import LeasingWorker

from .settings import WorkerSettings


def _export_addresses(clients: ClientSettings) -> dict[str, str]:
    """Put the worker's addresses into this process's environment where it has none of its
    own; return what was put there.

    Task code runs on this process's loop and makes clients of its own: a bare ``Client()``
    reads ``FLUID_*_ADDRESS`` from the environment, while the worker's addresses may come
    from elsewhere (an embedded system's port, ``fluid dev --port``), so without this the
    task would dial localhost:50051 rather than the system it runs for. What the operator
    set stays.
    """
    addresses = {
        "FLUID_DISPATCHER_ADDRESS": clients.dispatcher,
        "FLUID_HISTORY_ADDRESS": clients.history,
        "FLUID_SCHEDULER_ADDRESS": clients.scheduler,
    }
    exported = {name: value for name, value in addresses.items() if name not in os.environ}
    os.environ.update(exported)
    return exported


def _withdraw_addresses(exported: dict[str, str]) -> None:
    """Take back what ``_export_addresses`` put there, unless changed since: one process may
    run one system after another (tests, an embedding program), each with its own port."""
    for name, value in exported.items():
        if os.environ.get(name) == value:
            del os.environ[name]


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
        self._exported: dict[str, str] = {}
        self._logs = RunLogCapture(self.settings.output_tail_lines)

    def attach(self, server: grpc.aio.Server) -> list[str]:
        return []  # the worker serves only health and reflection

    async def _execute(self, task: Task, run: Run) -> RunReport:
        assert self._manager is not None, "started"
        with self._logs.capturing(run.id) as tail:
            report = await execute_run(task, run, self._manager)
        # `fluid logs RUN_ID` shows what the run logged (ctx.logger and any logger).
        return replace(report, output_tail=tuple(tail))

    async def start(self) -> None:
        logging.getLogger().addHandler(self._logs)
        clients = self.context.clients
        self._exported = _export_addresses(clients)
        self._channel = open_channel(clients.dispatcher, clients.token.get_secret_value())
        self._client = Client(settings=self.settings.task_clients(clients))
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
        _withdraw_addresses(self._exported)
        if self._client is not None:
            await self._client.close()
        if self._channel is not None:
            await self._channel.close(None)


def create_service(context: ServiceContext) -> IoWorkerService:
    return IoWorkerService(context)
