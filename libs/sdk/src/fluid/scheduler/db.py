"""The seed's db plugin, backed by the history service.

The seed's ``TaskDbPlugin`` writes a row per run into a table of the application's own
database. In fluid every run is already recorded by the history service, through the
dispatcher's outbox, whichever process executed it; so this plugin writes nothing and
reads history: ``get_history`` and ``get_run`` answer from ``HistoryService``. Its
arguments keep the seed's meaning where they have one here: ``skip_db_tag`` leaves runs
of tasks carrying that tag out of the answers, ``tag`` and ``table_name`` are kept for
the seed's callers (history owns its table), and ``route_prefix`` places the HTTP routes.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, field_validator

from .errors import NotFoundError
from .limits import PAGE_DEFAULT
from .manager import TaskManager, TaskManagerPlugin
from .models import TaskPriority, TaskState
from .run import JsonValue, Run

if TYPE_CHECKING:
    from .client import Client, RunPage


class TaskHistoryQuery(BaseModel):
    """Which stored runs to fetch, newest first."""

    task: str | None = Field(default=None, description="Only runs of this task")
    start: datetime | None = Field(default=None, description="Runs queued at or after")
    end: datetime | None = Field(default=None, description="Runs queued at or before")
    state: TaskState | None = Field(default=None, description="Only runs in this state")
    params: dict[str, Any] | None = Field(
        default=None, description="Runs whose params contain these (a dict or its JSON)"
    )
    tags: list[str] | None = Field(default=None, description="Runs of tasks with any tag")
    limit: int | None = Field(default=None, ge=1, description="At most this many runs")
    cursor: str = Field(default="", description="The cursor of the previous page")

    async def fetch(self, client: Client, *, limit: int = 0, cursor: str | None = None) -> RunPage:
        """The page of stored runs this query chooses (``limit`` and ``cursor`` override
        the query's own)."""
        return await client.list_runs(
            task=self.task or "",
            state=self.state if self.state is not None else (),
            start=self.start,
            end=self.end,
            params=self.params,
            tags=self.tags or (),
            limit=limit or self.limit or PAGE_DEFAULT,
            cursor=self.cursor if cursor is None else cursor,
        )

    @field_validator("params", mode="before")
    @classmethod
    def _parse_params_str(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return json.loads(value) if value else None
            except json.JSONDecodeError as exc:
                raise ValueError(f"params is not JSON: {exc}") from None
        return value


class RunErrorOut(BaseModel):
    """Why a run failed: the exception's type, message and traceback."""

    type: str
    message: str
    traceback: str = ""


class TaskRunHistory(BaseModel):
    """A run: the seed's fields, then how it ended and where it came from."""

    id: str
    task: str
    priority: TaskPriority
    state: TaskState
    queued: datetime | None
    start: datetime | None = None
    end: datetime | None = None
    params: dict[str, JsonValue]
    result: JsonValue = None
    error: RunErrorOut | None = None
    reason: str = ""
    attempt: int = 0
    from_run_id: str = ""
    root_run_id: str = ""
    worker_id: str = ""
    output_tail: list[str] = Field(default_factory=list)
    trace_id: str = ""

    @classmethod
    def from_run(cls, run: Run) -> TaskRunHistory:
        """The model of ``run`` (its params as the answering service gave them: masked)."""
        traceparent = run.trace_context.get("traceparent", "")
        return cls(
            id=run.id,
            task=run.task,
            priority=run.priority,
            state=run.state,
            queued=run.queued,
            start=run.start,
            end=run.end,
            params=run.params,
            result=run.result,
            error=RunErrorOut(**asdict(run.error)) if run.error else None,
            reason=run.reason,
            attempt=run.attempt,
            from_run_id=run.from_run_id,
            root_run_id=run.root_run_id,
            worker_id=run.worker_id,
            output_tail=list(run.output_tail),
            # W3C traceparent: version-traceid-spanid-flags.
            trace_id=traceparent.split("-")[1] if traceparent.count("-") == 3 else "",
        )


class TaskRunHistoryPage(BaseModel):
    """A page of stored runs and the cursor of the next one (empty: the last page)."""

    data: list[TaskRunHistory]
    cursor: str = ""


class TaskDbPlugin(TaskManagerPlugin):
    """Reads the runs' history for routes and tasks (see the module's docstring)."""

    def __init__(
        self,
        db: object | None = None,
        *,
        table_name: str = "fluid_tasks",
        tag: str = "db",
        skip_db_tag: str = "skip_db",
        route_prefix: str | None = None,
    ) -> None:
        self.db = db
        self.table_name = table_name
        self.tag = tag
        self.skip_db_tag = skip_db_tag
        self.route_prefix = route_prefix
        self._task_manager: TaskManager | None = None

    def register(self, task_manager: TaskManager) -> None:
        """Make this the manager's db plugin (``get_db_plugin``)."""
        task_manager.state.task_db_plugin = self
        self._task_manager = task_manager

    def register_routes(self, app: Any, prefix: str = "/tasks", tags: Any = None) -> None:
        """Add ``GET {prefix}-history`` (a page, the query's fields as query parameters)
        and ``GET {prefix}-history/{run_id}`` (404 when history has no such run)."""
        # FastAPI only for the routes: the plugin itself reads history without it.
        from fastapi import APIRouter, Query

        route = self.route_prefix or f"{prefix}-history"
        router = APIRouter(tags=list(tags or []))

        # A default, not Annotated: annotations are strings here (postponed), resolved in
        # this module's globals, where the lazily imported Query is not.
        @router.get(route, response_model=TaskRunHistoryPage)
        async def history(q: TaskHistoryQuery = Query()) -> TaskRunHistoryPage:  # noqa: B008
            return await self.get_history(q)

        @router.get(f"{route}/{{run_id}}", response_model=TaskRunHistory)
        async def stored_run(run_id: str) -> TaskRunHistory:
            return await self.get_run(run_id)

        app.include_router(router)

    @property
    def _client(self) -> Client:
        if self._task_manager is None:
            raise RuntimeError("the db plugin is not registered with a task manager")
        return self._task_manager.client

    def _kept(self, run: Run) -> bool:
        return self.skip_db_tag not in run.tags

    async def get_history(self, q: TaskHistoryQuery) -> TaskRunHistoryPage:
        """A page of stored runs matching ``q``, newest first."""
        page = await q.fetch(self._client)
        return TaskRunHistoryPage(
            data=[TaskRunHistory.from_run(run) for run in page.runs if self._kept(run)],
            cursor=page.next_cursor,
        )

    async def get_run(self, run_id: str) -> TaskRunHistory:
        """The stored run ``run_id`` (``NotFoundError`` when history has none)."""
        run = await self._client.get_stored_run(run_id)
        if not self._kept(run):
            raise NotFoundError(f"run {run_id} not found")
        return TaskRunHistory.from_run(run)


def get_db_plugin(task_manager: object) -> TaskDbPlugin:
    """The manager's db plugin, registered now if it has none: history is always there,
    so a task can read it through ``get_db_plugin(ctx.task_manager)`` without setup."""
    if not isinstance(task_manager, TaskManager):
        raise TypeError(f"get_db_plugin needs a TaskManager, got {task_manager!r}")
    plugin = getattr(task_manager.state, "task_db_plugin", None)
    if isinstance(plugin, TaskDbPlugin):
        return plugin
    created = TaskDbPlugin()
    task_manager.with_plugin(created)
    return created
