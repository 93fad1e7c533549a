"""How `fluid` prints what it found: tables for people, JSON for scripts, errors on stderr.

Commands fetch; this module alone decides the look, so a format changes in one place.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from fluid.scheduler import Run, RunPage, TaskInfo, TaskState
from fluid.scheduler.models import WorkerKind
from fluid.scheduler.status import DeadLetter, QueueStatus, ScheduleInfo

console = Console()
# Errors, progress bars and notes go to stderr so that stdout stays parseable.
errors = Console(stderr=True)

_STATE_STYLE = {
    TaskState.success: "green",
    TaskState.failure: "red",
    TaskState.aborted: "yellow",
    TaskState.rate_limited: "magenta",
    TaskState.interrupted: "red",
    TaskState.running: "cyan",
    TaskState.queued: "blue",
}


def print_error(message: str) -> None:
    """The one red line a failed command prints (its caller picks the exit code)."""
    errors.print(f"[red]error:[/] {message}")


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _state(run: Run) -> str:
    style = _STATE_STYLE.get(run.state, "white")
    return f"[{style}]{run.state}[/]"


def _next_page(cursor: str) -> None:
    if cursor:
        console.print(f"next page: --cursor {cursor}")


def _run_json(run: Run) -> dict[str, Any]:
    data = asdict(run)
    data["tags"] = sorted(run.tags)
    encoded: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return encoded


def print_run(run: Run, as_json: bool) -> None:
    """One run, field by field; the optional fields only when they are set."""
    if as_json:
        console.print_json(data=_run_json(run))
        return
    table = Table(show_header=False, box=None)
    rows: list[tuple[str, str]] = [
        ("id", run.id),
        ("task", run.task),
        ("state", _state(run)),
        ("priority", str(run.priority)),
        ("params", json.dumps(run.params)),
        ("queued", _when(run.queued)),
        ("start", _when(run.start)),
        ("end", _when(run.end)),
        ("attempt", str(run.attempt)),
    ]
    if run.duration is not None:
        rows.append(("duration", _milliseconds(run.duration)))
    if run.result is not None:
        rows.append(("result", json.dumps(run.result)))
    if run.error is not None:
        rows.append(("error", f"{run.error.type}: {run.error.message}"))
    if run.reason:
        rows.append(("reason", run.reason))
    if run.from_run_id:
        rows.append(("parent", run.from_run_id))
    if run.root_run_id and run.root_run_id != run.id:
        rows.append(("root", run.root_run_id))
    for key, value in rows:
        table.add_row(f"[bold]{key}[/]", value)
    console.print(table)


def print_run_summary(task: str, runs: list[Run], as_json: bool) -> None:
    """Many runs of one task queued together: their ids (JSON) and how many are in each state."""
    states = Counter(str(run.state) for run in runs)
    if as_json:
        console.print_json(data={"runs": [run.id for run in runs], "states": states})
        return
    console.print(
        f"{len(runs)} runs of {task}: " + ", ".join(f"{n} {s}" for s, n in states.items())
    )


def print_run_page(page: RunPage, as_json: bool) -> None:
    if as_json:
        console.print_json(
            data={"runs": [_run_json(item) for item in page.runs], "next_cursor": page.next_cursor}
        )
        return
    table = Table("id", "task", "state", "queued", "duration", "attempt")
    for item in page.runs:
        duration = _milliseconds(item.duration) if item.duration is not None else "-"
        table.add_row(
            item.id, item.task, _state(item), _when(item.queued), duration, str(item.attempt)
        )
    console.print(table)
    _next_page(page.next_cursor)


def print_output(run: Run) -> None:
    """A run's output tail (stdout), then its traceback if it failed (stderr)."""
    if not run.output_tail:
        errors.print(f"run {run.id} ({run.task}, {run.state}) captured no output")
    for line in run.output_tail:
        console.out(line, highlight=False)
    if run.error is not None and run.error.traceback:
        errors.print(f"[red]{run.error.type}: {run.error.message}[/]")
        errors.out(run.error.traceback, highlight=False)


def print_status(health: dict[str, str], queue_status: QueueStatus, as_json: bool) -> None:
    """Each service's health, the queue depth per priority, the workers, what is stuck."""
    if as_json:
        console.print_json(
            data={
                "services": health,
                "queue": {str(p): n for p, n in queue_status.depths.items()},
                "workers": [asdict(worker) for worker in queue_status.workers],
                "dead_letters": {
                    "count": queue_status.dead_letters,
                    "oldest": queue_status.oldest_dead_letter,
                },
                "history_outbox_pending": queue_status.outbox_pending,
                "degraded_loops": [asdict(loop) for loop in queue_status.degraded_loops],
            },
            default=str,
        )
        return
    services = Table("service", "status")
    for name, serving in health.items():
        services.add_row(
            name, f"[green]{serving}[/]" if serving == "SERVING" else f"[red]{serving}[/]"
        )
    console.print(services)
    depth = Table("priority", "queued")
    for priority, runs_waiting in queue_status.depths.items():
        depth.add_row(str(priority), str(runs_waiting))
    console.print(depth)
    workers = Table("worker", "kind", "load", "tasks")
    for worker in queue_status.workers:
        workers.add_row(
            worker.worker_id,
            worker.kind,
            f"{worker.running}/{worker.concurrency}",
            ", ".join(worker.tasks),
        )
    console.print(workers)
    dead = queue_status.dead_letters
    console.print(
        f"dead letters: {'[red]' if dead else ''}{dead}{'[/]' if dead else ''}"
        + (f" (oldest {_when(queue_status.oldest_dead_letter)})" if dead else "")
        + f"   waiting for history: {queue_status.outbox_pending}"
    )
    for loop in queue_status.degraded_loops:
        console.print(f"[red]degraded:[/] {loop.name} since {_when(loop.since)}: {loop.error}")


def print_dead_letters(letters: list[DeadLetter], next_cursor: str, as_json: bool) -> None:
    if as_json:
        console.print_json(
            data={
                "dead_letters": [asdict(letter) for letter in letters],
                "next_cursor": next_cursor,
            },
            default=str,
        )
        return
    table = Table("id", "run", "task", "state", "version", "stored", "size", "reason")
    for letter in letters:
        table.add_row(
            letter.id,
            letter.run_id,
            letter.task,
            str(letter.state),
            str(letter.version),
            _when(letter.time),
            f"{letter.size_bytes} B",
            letter.reason,
        )
    console.print(table)
    _next_page(next_cursor)


def _task_json(info: TaskInfo, schedule: ScheduleInfo | None) -> dict[str, Any]:
    definition = info.definition
    data: dict[str, Any] = {
        "name": definition.name,
        "short_description": definition.short_description,
        "cpu_bound": definition.cpu_bound,
        "timeout_seconds": definition.timeout_seconds,
        "max_concurrency": definition.max_concurrency,
        "priority": definition.priority.value,
        "tags": sorted(definition.tags),
        "schedule": str(definition.schedule) if definition.schedule else "",
        "enabled": info.enabled,
        "workers": info.workers,
        "running": info.running,
    }
    data["next_fire"] = schedule.next_fire.isoformat() if schedule and schedule.next_fire else None
    data["last_slot"] = schedule.last_slot.isoformat() if schedule and schedule.last_slot else None
    data["last_run_id"] = schedule.last_run_id if schedule else ""
    return data


def print_tasks(infos: list[TaskInfo], schedules: dict[str, ScheduleInfo], as_json: bool) -> None:
    """Registered tasks; the schedule columns from ``schedules`` (by task), "-" when absent."""
    if as_json:
        console.print_json(data=[_task_json(info, schedules.get(info.name)) for info in infos])
        return
    table = Table(
        "task",
        "kind",
        "enabled",
        "workers",
        "running",
        "schedule",
        "next fire",
        "last run",
        "description",
    )
    for info in infos:
        schedule = schedules.get(info.name)
        last_run = "-"
        if schedule is not None and schedule.last_run_id:
            last_run = f"{_when(schedule.last_slot)}\n[dim]{schedule.last_run_id}[/]"
        table.add_row(
            info.name,
            WorkerKind.of(info.definition.cpu_bound).value,
            "yes" if info.enabled else "[yellow]no[/]",
            str(info.workers),
            str(info.running),
            str(info.definition.schedule or "-"),
            _when(schedule.next_fire if schedule else None),
            last_run,
            info.definition.short_description,
        )
    console.print(table)
