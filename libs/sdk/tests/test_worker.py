"""The worker runtime's loops against a fake link to the dispatcher (no gRPC)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import grpc
import pytest

from fluid.scheduler.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    ResourceExhaustedError,
    UnavailableError,
)
from fluid.scheduler.limits import limits
from fluid.scheduler.manager import TaskManager
from fluid.scheduler.models import (
    HeartbeatReply,
    ReportReply,
    RunError,
    RunReport,
    TaskState,
    WorkerKind,
)
from fluid.scheduler.run import Run
from fluid.scheduler.task import Task, TaskRun, task
from fluid.scheduler.v1 import dispatcher_pb2, run_pb2
from fluid.service.worker import LeasingWorker
from fluid.service.worker_link import (
    DispatcherLink,
    EncodedReport,
    LeaseReply,
    UnreadableLease,
)
from fluid.service.worker_reports import Reporter

PROMPTLY = 5.0
"""Seconds a wait that should end at once may take before the test fails (a safety net)."""


@task
async def work(ctx: TaskRun) -> None:
    """The task the fake dispatcher leases (the tests' executor stands in for its body)."""


TASKS = {"work": work}


def leased(run_id: str, attempt: int = 0) -> Run:
    return Run(id=run_id, task="work", state=TaskState.running, attempt=attempt)


class FakeLink:
    """A dispatcher in memory: leases what a test offers, records what the worker sends.

    ``failures[method]`` holds errors the next calls of that method raise, one per call;
    ``refuse`` says which batches of reports to refuse (the error, or None to take it).
    """

    def __init__(self, lease_ttl: float = 3.0) -> None:
        self.lease_ttl = lease_ttl
        self.offers: asyncio.Queue[LeaseReply] = asyncio.Queue()
        self.heartbeat_replies: asyncio.Queue[HeartbeatReply] = asyncio.Queue()
        self.failures: defaultdict[str, list[Exception]] = defaultdict(list)
        self.refuse: Callable[[Sequence[EncodedReport]], Exception | None] = lambda reports: None
        self.reports: dict[str, RunReport] = {}
        # The run ids of every batch the worker tried to send, taken or not.
        self.attempted: list[list[str]] = []
        self.released: list[str] = []
        self.calls: Counter[str] = Counter()
        self._changed = asyncio.Condition()

    async def _call(self, method: str) -> None:
        async with self._changed:
            self.calls[method] += 1
            self._changed.notify_all()
        if self.failures[method]:
            raise self.failures[method].pop(0)

    async def until(self, done: Callable[[], bool]) -> None:
        async with asyncio.timeout(PROMPTLY), self._changed:
            await self._changed.wait_for(done)

    async def reported(self, run_id: str) -> RunReport:
        await self.until(lambda: run_id in self.reports)
        return self.reports[run_id]

    async def register(
        self,
        worker_id: str,
        tasks: Sequence[Task],
        *,
        kind: WorkerKind,
        concurrency: int,
        started: datetime,
    ) -> float:
        await self._call("register")
        return self.lease_ttl

    async def lease(self, worker_id: str, max_runs: int, wait: float) -> LeaseReply:
        await self._call("lease")
        try:
            async with asyncio.timeout(wait):  # the long poll
                return await self.offers.get()
        except TimeoutError:
            return LeaseReply(runs=[])

    async def heartbeat(
        self, worker_id: str, run_ids: Sequence[str], timeout: float
    ) -> HeartbeatReply:
        await self._call("heartbeat")
        if self.heartbeat_replies.empty():
            return HeartbeatReply()
        return self.heartbeat_replies.get_nowait()

    def encode_report(
        self, run_id: str, attempt: int, report: RunReport, *, replacement: bool = False
    ) -> EncodedReport:
        return EncodedReport(run_id, attempt, report, len(repr(report)), replacement)

    async def report(self, worker_id: str, reports: Sequence[EncodedReport]) -> ReportReply:
        self.attempted.append([report.run_id for report in reports])
        await self._call("report")
        refusal = self.refuse(reports)
        if refusal is not None:
            raise refusal
        async with self._changed:
            self.reports.update((report.run_id, report.report) for report in reports)
            self._changed.notify_all()
        return ReportReply()

    async def release(self, worker_id: str, run_ids: Sequence[str]) -> None:
        await self._call("release")
        self.released.extend(run_ids)


class Executor:
    """Executes attempts as a test says: ``reports`` by run id (success otherwise); runs
    in ``held`` go on until cancelled."""

    def __init__(self) -> None:
        self.reports: dict[str, RunReport] = {}
        self.held: set[str] = set()
        self.started: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.cancelled: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)

    async def __call__(self, task: Task, run: Run) -> RunReport:
        self.started[run.id].set()
        if run.id in self.held:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled[run.id].set()
                raise
        return self.reports.get(run.id, RunReport(TaskState.success, result=f"did {run.id}"))


@pytest.fixture
def link() -> FakeLink:
    return FakeLink()


@pytest.fixture
def executor() -> Executor:
    return Executor()


def worker_for(link: FakeLink, executor: Executor, **options: Any) -> LeasingWorker:
    settings: dict[str, Any] = {
        "lifecycle": TaskManager(),
        "lease_wait": 0.05,
        "retry_first": 0.001,
        "retry_cap": 0.01,
        "report_flush_timeout": PROMPTLY,
        **options,
    }
    return LeasingWorker(link=link, executor=executor, tasks=TASKS, **settings)


@asynccontextmanager
async def started(worker: LeasingWorker) -> AsyncIterator[LeasingWorker]:
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop(grace=0.01)


async def wait_for(event: asyncio.Event) -> None:
    await asyncio.wait_for(event.wait(), PROMPTLY)


# -- execution and heartbeats --------------------------------------------------------


async def test_a_leased_run_is_executed_and_its_report_reported(
    link: FakeLink, executor: Executor
) -> None:
    async with started(worker_for(link, executor)):
        await link.offers.put(LeaseReply(runs=[leased("r1")]))
        report = await link.reported("r1")
    assert report == RunReport(TaskState.success, result="did r1")


async def test_an_abort_from_the_heartbeat_cancels_the_run_and_reports_it_aborted(
    executor: Executor,
) -> None:
    link = FakeLink(lease_ttl=0.03)
    executor.held.add("r1")
    async with started(worker_for(link, executor)):
        await link.offers.put(LeaseReply(runs=[leased("r1")]))
        await wait_for(executor.started["r1"])
        await link.heartbeat_replies.put(HeartbeatReply(aborts={"r1": "enough"}))
        report = await link.reported("r1")
    assert executor.cancelled["r1"].is_set()
    assert report == RunReport(TaskState.aborted, reason="enough")


async def test_a_lost_lease_stops_the_run_without_a_report(executor: Executor) -> None:
    link = FakeLink(lease_ttl=0.03)
    executor.held.add("r1")
    worker = worker_for(link, executor)
    async with started(worker):
        await link.offers.put(LeaseReply(runs=[leased("r1")]))
        await wait_for(executor.started["r1"])
        await link.heartbeat_replies.put(HeartbeatReply(lost=["r1"]))
        await wait_for(executor.cancelled["r1"])
    # Stopping delivered every report queued: none was for the lost run.
    assert "r1" not in link.reports
    assert link.released == []  # the dispatcher already took it back


async def test_a_stopping_worker_hands_back_the_runs_that_did_not_finish(
    link: FakeLink, executor: Executor
) -> None:
    executor.held.add("slow")
    worker = worker_for(link, executor)
    await worker.start()
    await link.offers.put(LeaseReply(runs=[leased("slow"), leased("quick")]))
    await link.reported("quick")
    await wait_for(executor.started["slow"])
    await worker.stop(grace=0.01)
    assert link.released == ["slow"]
    assert "slow" not in link.reports


async def test_lifecycle_handlers_see_the_attempt_start_and_its_sent_report_after_the_report(
    link: FakeLink, executor: Executor
) -> None:
    seen: list[tuple[TaskState, str]] = []
    ended = asyncio.Event()
    manager = TaskManager()

    async def on_running(run: Run) -> None:
        seen.append((run.state, ""))

    async def on_failure(run: Run) -> None:
        # The report is queued before the handlers run: a slow handler delays no report.
        await link.reported(run.id)
        seen.append((run.state, run.error.type if run.error else ""))
        ended.set()

    manager.register_async_handler("running", on_running)
    manager.register_async_handler("failure", on_failure)
    executor.reports["r1"] = RunReport(TaskState.success, result=float("nan"))
    async with started(worker_for(link, executor, lifecycle=manager)):
        await link.offers.put(LeaseReply(runs=[leased("r1")]))
        await wait_for(ended)
    assert seen == [
        (TaskState.running, ""),
        (TaskState.failure, "ResultNotSerializableError"),
    ]


async def test_runs_the_dispatcher_settled_reach_the_handlers(
    link: FakeLink, executor: Executor
) -> None:
    heard = asyncio.Event()
    manager = TaskManager()
    seen: list[tuple[str, TaskState]] = []

    async def on_rate_limited(run: Run) -> None:
        seen.append((run.id, run.state))
        heard.set()

    manager.register_async_handler("rate_limited.audit", on_rate_limited)
    limited = Run(id="busy", task="add", state=TaskState.rate_limited)
    async with started(worker_for(link, executor, lifecycle=manager)):
        await link.offers.put(LeaseReply(runs=[leased("r1")], settled=[limited]))
        await wait_for(heard)
        await link.reported("r1")
    assert seen == [("busy", TaskState.rate_limited)]


# -- reports made sendable ----------------------------------------------------------


async def test_a_result_over_the_limit_fails_the_run_and_keeps_its_other_fields(
    link: FakeLink, executor: Executor
) -> None:
    size = limits().result_bytes + 1
    executor.reports["big"] = RunReport(
        TaskState.success, result="x" * (size - 2), output_tail=("working", "done")
    )
    async with started(worker_for(link, executor)):
        await link.offers.put(LeaseReply(runs=[leased("big"), leased("small")]))
        report = await link.reported("big")
        small = await link.reported("small")
    assert report == RunReport(
        TaskState.failure,
        error=RunError(
            "ResultTooLargeError",
            f"result of {size} bytes is over the limit of {limits().result_bytes} bytes "
            "(FLUID_LIMIT_RESULT_BYTES)",
        ),
        output_tail=("working", "done"),
    )
    assert small.state is TaskState.success


@pytest.mark.parametrize("result", [float("nan"), float("inf"), {"when": object()}])
async def test_a_result_that_is_not_json_fails_the_run(
    link: FakeLink, executor: Executor, result: Any
) -> None:
    executor.reports["r1"] = RunReport(TaskState.success, result=result)
    async with started(worker_for(link, executor)):
        await link.offers.put(LeaseReply(runs=[leased("r1")]))
        report = await link.reported("r1")
    assert report.state is TaskState.failure and report.result is None
    assert report.error is not None and report.error.type == "ResultNotSerializableError"


async def test_error_text_and_output_are_cut_to_the_limits_and_made_storable(
    link: FakeLink, executor: Executor
) -> None:
    limit = limits()
    traceback = "Traceback\n" + "frame\n" * limit.traceback_chars + "ValueError: boom"
    executor.reports["r1"] = RunReport(
        TaskState.failure,
        error=RunError("ValueError", "bad\x00" * limit.error_message_chars, traceback),
        output_tail=tuple(f"line {n}\x00" for n in range(limit.output_lines + 5)),
    )
    async with started(worker_for(link, executor)):
        await link.offers.put(LeaseReply(runs=[leased("r1")]))
        report = await link.reported("r1")
    assert report.error is not None
    assert "\x00" not in report.error.message
    assert report.error.message.startswith("bad\ufffdbad")
    assert len(report.error.message) < limit.error_message_chars + 100
    assert report.error.traceback.endswith("ValueError: boom")
    assert len(report.error.traceback) < limit.traceback_chars + 100
    assert len(report.output_tail) == limit.output_lines
    assert report.output_tail[-1] == f"line {limit.output_lines + 4}\ufffd"


# -- reports -------------------------------------------------------------------------


def refusing(
    run_id: str, *, replacement_too: bool = False
) -> Callable[[Sequence[EncodedReport]], Any]:
    """Refuse every batch holding ``run_id``'s report (and its replacement if asked)."""

    def refuse(reports: Sequence[EncodedReport]) -> Exception | None:
        for report in reports:
            if report.run_id == run_id and (replacement_too or not report.replacement):
                return ResourceExhaustedError("RESOURCE_EXHAUSTED: message too large")
        return None

    return refuse


async def deliver_all(reporter: Reporter) -> None:
    async with asyncio.timeout(PROMPTLY):
        for _ in range(20):
            await reporter.step()
            if not reporter.pending:
                return
    raise AssertionError(f"{reporter.pending} report(s) still pending")


async def test_a_refused_batch_is_split_and_a_lone_refused_report_replaced_by_a_failure(
    link: FakeLink,
) -> None:
    link.refuse = refusing("big")
    reporter = Reporter(link, "w", batch_bytes=10_000, batch_size=10)
    for run_id in ("a", "big", "c"):
        reporter.add(run_id, 1, RunReport(TaskState.success, result="x"))
    await deliver_all(reporter)
    assert link.attempted == [["a", "big", "c"], ["a"], ["big", "c"], ["big"], ["big"], ["c"]]
    assert link.reports["a"] == link.reports["c"] == RunReport(TaskState.success, result="x")
    replaced = link.reports["big"]
    assert replaced.state is TaskState.failure
    assert replaced.result is None and replaced.output_tail == ()
    assert replaced.error is not None and replaced.error.type == "ReportRefusedError"
    assert "RESOURCE_EXHAUSTED: message too large" in replaced.error.message


async def test_a_report_refused_even_as_a_failure_is_dropped_and_named(
    link: FakeLink, caplog: pytest.LogCaptureFixture
) -> None:
    link.refuse = refusing("big", replacement_too=True)
    reporter = Reporter(link, "w", batch_bytes=10_000, batch_size=10)
    for run_id in ("big", "next"):
        reporter.add(run_id, 0, RunReport(TaskState.success))
    with caplog.at_level(logging.ERROR, logger="fluid.worker"):
        await deliver_all(reporter)
    assert list(link.reports) == ["next"]
    dropped = [record.getMessage() for record in caplog.records if "dropped" in record.getMessage()]
    assert len(dropped) == 1 and "run big" in dropped[0]


async def test_a_worker_whose_report_is_refused_goes_on_reporting(
    link: FakeLink, executor: Executor
) -> None:
    # The bug this guards against: one refused batch retried forever, no report after it.
    link.refuse = refusing("big")
    async with started(worker_for(link, executor)):
        await link.offers.put(LeaseReply(runs=[leased("big")]))
        first = await link.reported("big")
        await link.offers.put(LeaseReply(runs=[leased("next")]))
        second = await link.reported("next")
    assert first.error is not None and first.error.type == "ReportRefusedError"
    assert second.state is TaskState.success


async def test_an_unreachable_dispatcher_gets_the_same_batch_again_after_a_back_off(
    link: FakeLink,
) -> None:
    link.failures["report"] = [UnavailableError("UNAVAILABLE: restarting")] * 3
    reporter = Reporter(link, "w", batch_bytes=10_000, batch_size=10)
    reporter.add("a", 0, RunReport(TaskState.success))
    reporter.add("b", 0, RunReport(TaskState.success))
    for _ in range(3):
        with pytest.raises(UnavailableError):
            await reporter.step()
    await deliver_all(reporter)
    assert link.attempted == [["a", "b"]] * 4
    assert set(link.reports) == {"a", "b"}


async def test_an_unforeseen_failure_of_a_batch_is_retried_a_few_times_then_handled_as_refused(
    link: FakeLink,
) -> None:
    link.failures["report"] = [RuntimeError("bug")] * 100
    reporter = Reporter(link, "w", batch_bytes=10_000, batch_size=10)
    reporter.add("a", 0, RunReport(TaskState.success))
    for _ in range(4):
        with pytest.raises(RuntimeError):
            await reporter.step()
    await reporter.step()  # the fifth failure: replaced by a failure report
    link.failures["report"].clear()
    await deliver_all(reporter)
    replaced = link.reports["a"]
    assert replaced.error is not None and replaced.error.type == "ReportRefusedError"
    assert "RuntimeError: bug" in replaced.error.message


async def test_reports_rejected_by_the_dispatcher_are_logged_once_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Rejecting(FakeLink):
        async def report(self, worker_id: str, reports: Sequence[EncodedReport]) -> ReportReply:
            await super().report(worker_id, reports)
            return ReportReply(rejected=[(report.run_id, "state: unknown") for report in reports])

    link = Rejecting()
    reporter = Reporter(link, "w", batch_bytes=10_000, batch_size=10)
    reporter.add("a", 0, RunReport(TaskState.success))
    reporter.add("b", 0, RunReport(TaskState.success))
    with caplog.at_level(logging.WARNING, logger="fluid.worker"):
        await deliver_all(reporter)
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2
    assert "run a" in warnings[0] and "state: unknown" in warnings[0]
    assert "run b" in warnings[1]


async def test_a_stopping_worker_gives_up_on_an_unreachable_dispatcher_after_its_timeout(
    link: FakeLink, executor: Executor, caplog: pytest.LogCaptureFixture
) -> None:
    worker = worker_for(link, executor, report_flush_timeout=0.05)
    await worker.start()
    link.failures["report"] = [UnavailableError("UNAVAILABLE: down")] * 10_000
    await link.offers.put(LeaseReply(runs=[leased("r1")]))
    await link.until(lambda: link.calls["report"] >= 2)
    with caplog.at_level(logging.ERROR, logger="fluid.worker"):
        await asyncio.wait_for(worker.stop(grace=0.01), PROMPTLY)
    assert any("gave up delivering 1 report(s)" in r.getMessage() for r in caplog.records)


# -- supervised loops ----------------------------------------------------------------


async def test_re_registers_when_the_dispatcher_forgot_the_worker(
    link: FakeLink, executor: Executor
) -> None:
    link.failures["lease"].append(FailedPreconditionError("FAILED_PRECONDITION: unknown worker"))
    async with started(worker_for(link, executor)):
        await link.offers.put(LeaseReply(runs=[leased("r1")]))
        await link.reported("r1")
    assert link.calls["register"] == 2


async def test_a_loop_that_raises_is_degraded_logged_once_and_goes_on(
    link: FakeLink, executor: Executor, caplog: pytest.LogCaptureFixture
) -> None:
    link.failures["lease"] = [ValueError("bad lease reply")] * 3
    worker = worker_for(link, executor)
    with caplog.at_level(logging.ERROR, logger="fluid.loops"):
        async with started(worker):
            await link.until(lambda: link.calls["lease"] == 3)
            degraded = worker.degraded()
            await link.offers.put(LeaseReply(runs=[leased("r1")]))
            await link.reported("r1")
            recovered = worker.degraded()
    assert [(loop.name, loop.error) for loop in degraded] == [
        ("lease-loop", "ValueError: bad lease reply")
    ]
    assert recovered == ()
    assert sum("lease-loop" in record.getMessage() for record in caplog.records) == 1


async def test_an_unreadable_lease_fails_that_run_and_executes_the_others(
    link: FakeLink, executor: Executor
) -> None:
    reply = LeaseReply(
        runs=[leased("good")],
        unreadable=[UnreadableLease("bad", 2, "WireError: state: unknown task state 99")],
    )
    async with started(worker_for(link, executor)):
        await link.offers.put(reply)
        bad = await link.reported("bad")
        good = await link.reported("good")
    assert good.state is TaskState.success
    assert bad.state is TaskState.failure
    assert bad.error is not None and bad.error.type == "LeaseRejectedError"
    assert "unknown task state 99" in bad.error.message


# -- the gRPC link ---------------------------------------------------------------------


class StubDispatcher:
    """The two stub methods the link tests call, answering as told."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    async def LeaseRuns(self, request: Any, timeout: float) -> Any:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    async def ReportRuns(self, request: Any, timeout: float) -> Any:
        return self.answer


def rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "nope", "")


async def test_the_link_converts_each_leased_run_on_its_own() -> None:
    response = dispatcher_pb2.LeaseRunsResponse(
        leases=[
            dispatcher_pb2.Lease(run=run_pb2.Run(id="bad", task="work", attempt=2, state=99)),  # type: ignore[arg-type]
            dispatcher_pb2.Lease(
                run=run_pb2.Run(id="good", task="work", state=run_pb2.TASK_STATE_RUNNING)
            ),
        ]
    )
    link = DispatcherLink(StubDispatcher(response))  # type: ignore[arg-type]
    reply = await link.lease("w", 10, 0.1)
    assert [run.id for run in reply.runs] == ["good"]
    assert [(bad.run_id, bad.attempt) for bad in reply.unreadable] == [("bad", 2)]
    assert "unknown task state 99" in reply.unreadable[0].problem


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        (grpc.StatusCode.UNAVAILABLE, UnavailableError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, UnavailableError),
        (grpc.StatusCode.CANCELLED, UnavailableError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhaustedError),
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgumentError),
        (grpc.StatusCode.FAILED_PRECONDITION, FailedPreconditionError),
    ],
)
async def test_the_link_turns_status_codes_into_typed_errors(
    code: grpc.StatusCode, error_type: type[Exception]
) -> None:
    link = DispatcherLink(StubDispatcher(rpc_error(code)))  # type: ignore[arg-type]
    with pytest.raises(error_type, match=f"{code.name}: nope"):
        await link.lease("w", 1, 0.1)


async def test_the_link_sizes_a_report_as_encoded_and_reads_rejections() -> None:
    response = dispatcher_pb2.ReportRunsResponse(
        ignored_run_ids=["old"],
        rejected=[dispatcher_pb2.RejectedReport(run_id="r1", reason="bad")],
    )
    link = DispatcherLink(StubDispatcher(response))  # type: ignore[arg-type]
    report = link.encode_report("r1", 3, RunReport(TaskState.success, result="x" * 1000))
    assert 1000 < report.size < 1100
    assert await link.report("w", [report]) == ReportReply(
        ignored=["old"], rejected=[("r1", "bad")]
    )
