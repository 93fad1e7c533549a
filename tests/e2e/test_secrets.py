"""Secret params through the real SDK and the embedded system: intact in the task, masked
in every answer, in history's database and in the CLI's output."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from fluid.scheduler import Client, Run, TaskState
from fluid.scheduler.secrets import MASK
from fluid.service.host import Host

import sample_tasks
from history_polling import stored_run

TOKEN = "tok-3b1f-not-for-eyes"
KEY = "key-77c2-not-for-eyes"
SECRETS = (TOKEN, KEY)
MASKED = {"user": "ann", "token": MASK, "vault": {"key": MASK, "label": "main"}}


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _params(user: str = "ann") -> dict[str, Any]:
    return {"user": user, "token": SecretStr(TOKEN), "vault": {"key": KEY, "label": "main"}}


def _history_row(tmp_path: Path, run_id: str) -> Any:
    with sqlite3.connect(tmp_path / "history.db") as db:
        (params,) = db.execute("SELECT params FROM runs WHERE id = ?", (run_id,)).fetchone()
    return json.loads(params)


async def _fluid(*args: str) -> str:
    """What the CLI printed (stdout and stderr), once it exited 0."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fluid_cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode() + err.decode()


def _no_secret_in(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


async def test_the_task_gets_the_secrets_and_no_answer_shows_them(
    system: Host, client: Client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    queued = await client.queue_run(sample_tasks.login, _params())
    assert queued.params == MASKED, "the QueueRun answer"

    watched: list[Run] = [run async for run in client.watch(queued.id)]
    assert watched and all(run.params == MASKED for run in watched), "WatchRun"
    done = watched[-1]
    assert done.state is TaskState.success, done.error
    assert done.result == {"token": _digest(TOKEN), "key": _digest(KEY)}, "the task's values"
    assert (await client.get_run(queued.id)).params == MASKED, "GetRun"

    stored = await stored_run(client, queued.id, TaskState.success)
    assert stored.params == MASKED, "history's GetRun"
    listed = (await client.list_runs(task="login")).runs
    assert [run.params for run in listed] == [MASKED], "history's ListRuns"
    assert _history_row(tmp_path, queued.id) == MASKED, "history's database row"

    assert (await client.abort(queued.id)).params == MASKED, "AbortRun"

    shown = json.loads(await _fluid("--address", system.address, "run", queued.id, "--json"))
    assert shown["params"] == MASKED
    _no_secret_in(await _fluid("--address", system.address, "run", queued.id))
    _no_secret_in(caplog.text)


async def test_a_child_run_queued_with_secrets_gets_them(client: Client) -> None:
    parent = await client.queue_and_wait(sample_tasks.login_later, **_params("bo"))
    assert parent.state is TaskState.success, parent.error
    child = await client.wait(parent.result)
    assert child.state is TaskState.success, child.error
    assert child.result == {"token": _digest(TOKEN), "key": _digest(KEY)}
    assert child.params == {**MASKED, "user": "bo"}


async def test_queue_many_answers_masked(client: Client) -> None:
    runs = await client.queue_many(sample_tasks.login, [_params(), _params()])
    assert [run.params for run in runs] == [MASKED, MASKED]
    for run in runs:
        done = await client.wait(run.id)
        assert done.result == {"token": _digest(TOKEN), "key": _digest(KEY)}
