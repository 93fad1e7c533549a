"""Cpu-bound runs through real gRPC servers, each in a process of its own.

Every test runs twice: with a fresh interpreter per run and with a fork of the warm
forkserver per run (the ``cpu_mode`` fixture).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fluid.scheduler import Client, TaskState

from run_processes import gone, ready_pids
from runner_output import OutputLines

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _trace_id(traceparent: str) -> str:
    return traceparent.split("-")[1]


async def test_a_run_executes_in_another_process_with_its_params(
    client: Client, cpu_mode: str
) -> None:
    run = await client.queue_and_wait("whoami", word="hello", numbers=[1, 2, 3], timeout=30)
    assert run.state is TaskState.success, run.error
    assert run.result["pid"] != os.getpid()
    assert run.result["word"] == "hello"
    assert run.result["total"] == 6
    assert run.result["in_cpu_process"] is True
    # A fresh interpreter imports the task's module, not the runner's gRPC stack.
    assert run.result["grpc_loaded"] is (cpu_mode == "fork")


async def test_the_task_env_and_the_runs_trace_reach_the_process(client: Client) -> None:
    run = await client.queue_and_wait("whoami", timeout=30)
    assert run.state is TaskState.success, run.error
    assert run.result["flavour"] == "spicy"
    assert _trace_id(run.result["traceparent"]) == _trace_id(run.trace_context["traceparent"])


async def test_an_exception_ends_failure_with_the_error(client: Client) -> None:
    run = await client.queue_and_wait("explode", message="kaput", timeout=30)
    assert run.state is TaskState.failure
    assert run.error is not None
    assert (run.error.type, run.error.message) == ("ValueError", "kaput")
    assert "raise ValueError" in run.error.traceback


async def test_a_timeout_kills_the_process_group_and_fails(
    client: Client, output: OutputLines
) -> None:
    queued = await client.queue("hang")
    pid, grandchild = ready_pids(await output.wait_for(queued.id, "ready"))
    run = await client.wait(queued.id, timeout=30)
    assert run.state is TaskState.failure
    assert run.error is not None and run.error.type == "TimeoutError"
    assert "ready pid=" in run.error.traceback  # the last output lines tell what it did
    assert await gone(pid, grandchild)


async def test_the_timeout_counts_from_the_start_of_the_task_function(client: Client) -> None:
    # 1.5s of work within a 2s timeout: the interpreter's start and the imports, which
    # take a fresh process most of a second, are not part of it.
    run = await client.queue_and_wait("work_for", seconds=1.5, timeout=30)
    assert run.state is TaskState.success, run.error


async def test_busy_work_past_its_timeout_still_fails(client: Client) -> None:
    run = await client.queue_and_wait("work_for", seconds=30, timeout=30)
    assert run.state is TaskState.failure
    assert run.error is not None and run.error.type == "TimeoutError"
    assert "timed out after 2s" in run.error.message


async def test_ctx_abort_ends_aborted_and_is_not_retried(client: Client) -> None:
    run = await client.queue_and_wait("give_up", timeout=30)
    assert run.state is TaskState.aborted
    assert run.reason == "nothing to do"
    assert run.attempt == 0


async def test_an_external_abort_kills_the_process_and_ends_aborted(
    client: Client, output: OutputLines
) -> None:
    queued = await client.queue("linger")
    pid, grandchild = ready_pids(await output.wait_for(queued.id, "ready"))
    await client.abort(queued.id, "operator said stop")
    run = await client.wait(queued.id, timeout=30)
    assert run.state is TaskState.aborted
    assert run.reason == "operator said stop"
    assert await gone(pid, grandchild)


async def test_a_failing_run_is_retried_under_its_retry_policy(
    client: Client, tmp_path: Path
) -> None:
    ledger = tmp_path / "attempts.txt"
    run = await client.queue_and_wait("flaky", path=str(ledger), timeout=30)
    assert run.state is TaskState.failure
    assert run.attempt == 2
    assert run.error is not None and run.error.message == "attempt 2 failed"
    pids = ledger.read_text().split()
    assert len(pids) == 3
    assert len(set(pids)) == 3  # each attempt had a process of its own


async def test_output_streams_to_the_runner_log_tagged_with_the_run(
    client: Client, output: OutputLines
) -> None:
    run = await client.queue_and_wait("chatty", count=3, timeout=30)
    assert run.state is TaskState.success
    lines = output.of(run.id)
    for text in (
        "stdout] line 0",
        "stdout] line 2",
        "stderr] to stderr",
        "through the task logger",
    ):
        assert any(text in line for line in lines), (text, lines)
    assert all(f"[run {run.id} " in line for line in lines)


async def test_an_exit_without_an_report_fails_with_the_code_and_last_lines(
    client: Client,
) -> None:
    run = await client.queue_and_wait("crash", timeout=30)
    assert run.state is TaskState.failure
    assert run.error is not None
    assert run.error.type == "ProcessExitError"
    assert "exited with code 3" in run.error.message
    assert "last words" in run.error.traceback


async def test_a_run_queues_child_runs_from_its_process(client: Client) -> None:
    parent = await client.queue_and_wait("spawn_child", timeout=30)
    assert parent.state is TaskState.success, parent.error
    child = await client.wait(parent.result, timeout=30)
    assert child.state is TaskState.success
    assert child.from_run_id == parent.id
    assert child.result["word"] == "from parent"
