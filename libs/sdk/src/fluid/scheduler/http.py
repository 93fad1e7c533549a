"""The seed's HTTP routes over a task manager (``task_manager_fastapi``), and fluid's own.

Every route is a call through the manager's client: the HTTP door reaches the same
services as the gRPC one, with the same checks. The seed's routes keep their paths,
methods, bodies and status codes: ``GET {prefix}[?tags=]``, ``GET/PATCH/POST
{prefix}/{name}``, ``GET {prefix}-status``, ``DELETE {prefix}-queue[/{priority}]``; the db
plugin adds ``{prefix}-history`` (``TaskDbPlugin.register_routes``). fluid's own show a
run live, abort it, run it again and stream its states as Server-Sent Events
(``run_routes``), and list, retry and drop dead letters (``dead_letter_routes``).

A fluid error becomes the status its gRPC code means (``STATUS_OF_CODE``): an unknown task
404, params the task's schema refuses 422 naming each field, a store down 503.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import asdict
from enum import Enum, StrEnum
from typing import Annotated, Any, cast

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from fluid.service.auth import AuthError, AuthSettings, Role, Verifier

from .db import TaskHistoryQuery, TaskRunHistory
from .definition import TaskInfo
from .errors import FailedPreconditionError, FluidError, NotFoundError
from .limits import PAGE_MAX
from .manager import TaskManager
from .models import TaskPriority, TaskState
from .run import Run
from .secrets import MASK

# Runs one bulk call acts on at most: each is one call to the dispatcher.
BULK_MAX = 1000

STATUS_OF_CODE = {
    "INVALID_ARGUMENT": 422,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "FAILED_PRECONDITION": 409,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


class TaskOut(BaseModel):
    """A registered task as the routes answer it."""

    name: str
    short_description: str
    description: str
    module: str
    cpu_bound: bool
    timeout_seconds: float
    max_concurrency: int
    priority: TaskPriority
    tags: list[str]
    schedule: str | None
    params_schema: dict[str, Any]
    enabled: bool
    workers: int
    running: int

    @classmethod
    def from_info(cls, info: TaskInfo) -> TaskOut:
        """The model of a task the dispatcher knows."""
        task = info.definition
        return cls(
            name=task.name,
            short_description=task.short_description,
            description=task.description,
            module=task.module,
            cpu_bound=task.cpu_bound,
            timeout_seconds=task.timeout_seconds,
            max_concurrency=task.max_concurrency,
            priority=task.priority,
            tags=sorted(task.tags),
            schedule=str(task.schedule) if task.schedule is not None else None,
            params_schema=task.params_schema,
            enabled=info.enabled,
            workers=info.workers,
            running=info.running,
        )


class TaskUpdate(BaseModel):
    """The body of ``PATCH {prefix}/{name}``."""

    enabled: bool


class AbortRequest(BaseModel):
    """The body of ``POST /runs/{id}/abort``."""

    reason: str = ""


class BulkAction(StrEnum):
    """What ``POST /runs/bulk`` does to each matching run."""

    abort = "abort"
    rerun = "rerun"


class BulkRequest(TaskHistoryQuery):
    """Runs chosen by the history filters, and what to do to them (``dry_run``: count)."""

    action: BulkAction
    dry_run: bool = True
    limit: int = Field(default=100, ge=1, le=BULK_MAX)


class BulkResult(BaseModel):
    """How many runs matched, and the ids acted on (none on a dry run)."""

    matched: int
    done: list[str]
    refused: dict[str, str] = Field(default_factory=dict)


class DeadLetterSelection(BaseModel):
    """Which dead letters to retry or drop: ``ids``, or ``all``."""

    ids: list[str] = Field(default_factory=list)
    all: bool = False


def get_task_manager(request: Request) -> TaskManager:
    """The task manager the app serves (a FastAPI dependency)."""
    manager: TaskManager = request.app.state.task_manager
    return manager


ManagerDep = Annotated[TaskManager, Depends(get_task_manager)]


def _fluid_error(request: Request, error: Exception) -> JSONResponse:
    code = error.code if isinstance(error, FluidError) else "INTERNAL"
    status = STATUS_OF_CODE.get(code, 500)
    # RFC 9110: a 401 names the scheme it wants.
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"detail": str(error)}, status_code=status, headers=headers)


async def _task(manager: TaskManager, name: str) -> TaskInfo:
    for info in await manager.client.list_tasks():
        if info.name == name:
            return info
    raise NotFoundError(f"task {name} not found")


def task_routes(prefix: str = "/tasks", tags: Sequence[str | Enum] | None = None) -> APIRouter:
    """The seed's task routes under ``prefix``."""
    router = APIRouter(tags=list(tags or []))

    @router.get(prefix, response_model=list[TaskOut])
    async def list_tasks(
        manager: ManagerDep,
        tags: Annotated[str | None, Query(description="Comma-separated: tasks with any")] = None,
    ) -> list[TaskOut]:
        wanted = {tag.strip() for tag in (tags or "").split(",") if tag.strip()}
        infos = await manager.client.list_tasks()
        return [
            TaskOut.from_info(info)
            for info in sorted(infos, key=lambda item: item.name)
            if not wanted or wanted & info.definition.tags
        ]

    @router.get(f"{prefix}/{{name}}", response_model=TaskOut)
    async def get_task(manager: ManagerDep, name: str) -> TaskOut:
        return TaskOut.from_info(await _task(manager, name))

    @router.patch(f"{prefix}/{{name}}", response_model=TaskOut)
    async def update_task(manager: ManagerDep, name: str, update: TaskUpdate) -> TaskOut:
        return TaskOut.from_info(await manager.client.set_task_enabled(name, update.enabled))

    @router.post(f"{prefix}/{{name}}", response_model=TaskRunHistory)
    async def queue_task(
        manager: ManagerDep,
        name: str,
        params: Annotated[dict[str, Any], Body(default_factory=dict)],
    ) -> TaskRunHistory:
        run = await manager.client.queue_run(name, params)
        return TaskRunHistory.from_run(run)

    @router.get(f"{prefix}-status")
    async def tasks_status(manager: ManagerDep) -> dict[str, Any]:
        return await manager.status()

    @router.delete(f"{prefix}-queue", response_model=BulkResult)
    @router.delete(f"{prefix}-queue/{{priority}}", response_model=BulkResult)
    async def clear_queue(
        manager: ManagerDep,
        priority: TaskPriority | None = None,
        limit: Annotated[int, Query(ge=1, le=BULK_MAX)] = BULK_MAX,
    ) -> BulkResult:
        # Each queued run ends aborted (recorded, never dropped unseen), as history lists
        # them: a run queued in the last moment may not be there yet.
        request = BulkRequest(
            action=BulkAction.abort, dry_run=False, state=TaskState.queued, limit=limit
        )
        return await bulk(manager, request, priority=priority)

    return router


def run_routes(prefix: str = "/runs", tags: Sequence[str | Enum] | None = None) -> APIRouter:
    """Fluid's own run routes: a run live, abort, run again, bulk actions."""
    router = APIRouter(tags=list(tags or []))

    @router.get(f"{prefix}/{{run_id}}", response_model=TaskRunHistory)
    async def get_run(manager: ManagerDep, run_id: str) -> TaskRunHistory:
        try:
            return TaskRunHistory.from_run(await manager.client.get_run(run_id))
        except NotFoundError:
            # Finished runs leave the dispatcher after a while; history keeps them.
            return TaskRunHistory.from_run(await manager.client.get_stored_run(run_id))

    @router.post(f"{prefix}/{{run_id}}/abort", response_model=TaskRunHistory)
    async def abort_run(
        manager: ManagerDep,
        run_id: str,
        request: Annotated[AbortRequest, Body(default_factory=AbortRequest)],
    ) -> TaskRunHistory:
        return TaskRunHistory.from_run(await manager.client.abort(run_id, request.reason))

    @router.post(f"{prefix}/{{run_id}}/rerun", response_model=TaskRunHistory)
    async def rerun(manager: ManagerDep, run_id: str) -> TaskRunHistory:
        original = await get_run(manager, run_id)
        return TaskRunHistory.from_run(await _queue_again(manager, original))

    @router.post(f"{prefix}/bulk", response_model=BulkResult)
    async def bulk_action(manager: ManagerDep, request: BulkRequest) -> BulkResult:
        return await bulk(manager, request)

    return router


async def _matching(
    manager: TaskManager, request: BulkRequest, priority: TaskPriority | None
) -> list[Run]:
    """The stored runs the request's filters choose, newest first, at most its limit."""
    found: list[Run] = []
    cursor = request.cursor
    while len(found) < request.limit:
        page = await request.fetch(manager.client, limit=PAGE_MAX, cursor=cursor)
        found.extend(run for run in page.runs if priority is None or run.priority is priority)
        cursor = page.next_cursor
        if not cursor:
            break
    return found[: request.limit]


async def bulk(
    manager: TaskManager, request: BulkRequest, *, priority: TaskPriority | None = None
) -> BulkResult:
    """Abort or run again the runs history lists for the filters; a dry run only counts.
    Each run is one call: one refused (secrets cannot be re-sent, the dispatcher is full)
    is listed with why, and the others go on."""
    runs = await _matching(manager, request, priority)
    if request.dry_run:
        return BulkResult(matched=len(runs), done=[])
    done: list[str] = []
    refused: dict[str, str] = {}
    for run in runs:
        try:
            if request.action is BulkAction.abort:
                await manager.client.abort(run.id, "bulk abort")
            else:
                await _queue_again(manager, TaskRunHistory.from_run(run))
        except FluidError as error:
            refused[run.id] = str(error)
            continue
        done.append(run.id)
    return BulkResult(matched=len(runs), done=done, refused=refused)


async def _queue_again(manager: TaskManager, original: TaskRunHistory) -> Run:
    if _holds_mask(original.params):
        # The answers mask secrets: queueing what we see would send the mask.
        raise FailedPreconditionError(
            f"run {original.id} has secret params, which are never shown: queue it again with them"
        )
    return await manager.client.queue_run(
        original.task, original.params, priority=original.priority
    )


def system_routes(tags: Sequence[str | Enum] | None = None) -> APIRouter:
    """What the dashboard shows beside runs: schedules, workers, and who is calling."""
    router = APIRouter(tags=list(tags or []))

    @router.get("/schedules")
    async def schedules(manager: ManagerDep) -> dict[str, Any]:
        status = await manager.client.list_schedules()
        return {
            "leader_id": status.leader_id,
            "replica_id": status.replica_id,
            "leader_since": status.leader_since,
            "lateness": asdict(status.lateness),
            "schedules": [
                {**asdict(item), "schedule": item.description} for item in status.schedules
            ],
        }

    @router.get("/workers")
    async def workers(manager: ManagerDep) -> list[dict[str, Any]]:
        status = await manager.client.queue_status()
        return [{**asdict(worker), "kind": str(worker.kind)} for worker in status.workers]

    @router.get("/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        # For showing only the actions a caller may take: the services decide anyway.
        return caller_of(request.headers.get("authorization", ""))

    return router


def caller_of(authorization: str) -> dict[str, Any]:
    """Who an ``Authorization`` header says is calling, and their roles, as the gateway can
    tell: with auth off, anyone may do anything; with it on, a token its keys verify."""
    settings = AuthSettings()
    if not settings.enabled:
        return {"auth": False, "subject": "", "roles": [str(role) for role in Role]}
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return {"auth": True, "subject": "", "roles": [], "error": "no bearer token"}
    try:
        caller = Verifier(settings.keys()).verify(token.strip())
    except AuthError as error:
        return {"auth": True, "subject": "", "roles": [], "error": str(error)}
    return {"auth": True, "subject": caller.subject, "roles": sorted(map(str, caller.roles))}


def event_routes(prefix: str = "/runs", tags: Sequence[str | Enum] | None = None) -> APIRouter:
    """Run states as Server-Sent Events: one run's until it ends, or every change."""
    router = APIRouter(tags=list(tags or []))

    @router.get(f"{prefix}/events")
    async def all_events(
        manager: ManagerDep,
        task: Annotated[list[str] | None, Query(description="Only these tasks' runs")] = None,
    ) -> StreamingResponse:
        changes = cast(AsyncGenerator[Run, None], manager.client.watch_runs(task or ()))

        async def events() -> AsyncIterator[str]:
            # Said at once: a feed may be quiet for long, and the client should know it
            # is connected. A refusal (too many streams open) comes as an error event.
            yield ": watching\n\n"
            async with contextlib.aclosing(changes):
                try:
                    async for run in changes:
                        yield _event(run)
                except FluidError as error:
                    detail = json.dumps({"detail": str(error)})
                    yield f"event: error\ndata: {detail}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @router.get(f"{prefix}/{{run_id}}/events")
    async def run_events(manager: ManagerDep, run_id: str) -> StreamingResponse:
        # Read the first state before answering, so an unknown run is a 404, not a stream.
        watch = cast(AsyncGenerator[Run, None], manager.client.watch(run_id))
        first = await anext(watch)

        async def events() -> AsyncIterator[str]:
            async with contextlib.aclosing(watch):
                yield _event(first)
                async for run in watch:
                    yield _event(run)

        return StreamingResponse(events(), media_type="text/event-stream")

    return router


def dead_letter_routes(tags: Sequence[str | Enum] | None = None) -> APIRouter:
    """The snapshots history refused: a page of them, retry them, drop them."""
    router = APIRouter(tags=list(tags or []))

    @router.get("/dead-letters")
    async def dead_letters(
        manager: ManagerDep,
        limit: Annotated[int, Query(ge=0)] = 0,
        cursor: str = "",
    ) -> dict[str, Any]:
        letters, next_cursor = await manager.client.dead_letters(limit, cursor)
        return {
            "data": [
                {**asdict(letter), "time": letter.time.isoformat(), "state": str(letter.state)}
                for letter in letters
            ],
            "cursor": next_cursor,
        }

    @router.post("/dead-letters/retry")
    async def retry_dead_letters(
        manager: ManagerDep, selection: DeadLetterSelection
    ) -> dict[str, int]:
        return {
            "retried": await manager.client.retry_dead_letters(selection.ids, every=selection.all)
        }

    @router.post("/dead-letters/drop")
    async def drop_dead_letters(
        manager: ManagerDep, selection: DeadLetterSelection
    ) -> dict[str, int]:
        return {
            "dropped": await manager.client.drop_dead_letters(selection.ids, every=selection.all)
        }

    return router


def _event(run: Run) -> str:
    data = json.dumps(TaskRunHistory.from_run(run).model_dump(mode="json"))
    return f"event: {run.state}\ndata: {data}\n\n"


def _holds_mask(value: object) -> bool:
    if isinstance(value, dict):
        return any(_holds_mask(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_mask(item) for item in value)
    return bool(value == MASK)


def task_manager_fastapi(
    task_manager: TaskManager,
    app: FastAPI | None = None,
    include_router: bool = True,
    prefix: str = "/tasks",
    tags: Sequence[str | Enum] | None = None,
) -> FastAPI:
    """A FastAPI app (``app``, or a new one) serving ``task_manager``'s routes.

    A new app starts and stops the manager with itself; a given app's owner does. The
    plugins' ``register_routes`` add theirs (the db plugin its ``{prefix}-history``).
    """
    if app is None:

        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            async with task_manager:
                yield

        app = FastAPI(title="fluid", lifespan=lifespan)
    app.state.task_manager = task_manager
    app.add_exception_handler(FluidError, _fluid_error)
    if include_router:
        app.include_router(task_routes(prefix, tags))
    for plugin in task_manager.plugins:
        plugin.register_routes(app, prefix, list(tags or []))
    return app
