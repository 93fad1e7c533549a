"""HistoryService over a real in-process gRPC server, through the SDK client and raw stubs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2, timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.engine import URL, make_url

from fluid.scheduler import Client, TaskState, wire
from fluid.scheduler.errors import InvalidArgumentError, NotFoundError, UnavailableError
from fluid.scheduler.models import RunError
from fluid.scheduler.run import Run, utcnow
from fluid.scheduler.v1 import history_pb2, history_pb2_grpc, run_pb2
from fluid.service.host import Host
from fluid.service.settings import ServerSettings
from fluid_history.service import HistoryService
from fluid_history.store.migrate import SchemaNotCurrentError
from fluid_history.store.sql import SqlRunStore
from fluid_history.testing import PostgresSchema

from .support import T0, MakeRun, first_upsert_cut


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # A directory that does not exist yet: the service must create it.
    path = tmp_path / "state" / "history.db"
    monkeypatch.setenv("FLUID_DATABASE_URL", f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
async def port(database: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[int]:
    async with _serving(f"sqlite+aiosqlite:///{database}", monkeypatch) as bound:
        yield bound


@pytest.fixture
async def channel(port: int) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as opened:
        yield opened


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> history_pb2_grpc.HistoryServiceAsyncStub:
    return history_pb2_grpc.HistoryServiceStub(channel)


@pytest.fixture
async def client(port: int) -> AsyncIterator[Client]:
    async with Client(f"127.0.0.1:{port}") as connected:
        yield connected


async def _record(stub: history_pb2_grpc.HistoryServiceAsyncStub, *runs: Run) -> int:
    request = history_pb2.RecordRunsRequest(runs=[wire.run_to_pb(run) for run in runs])
    response = await stub.RecordRuns(request)
    return response.applied


async def _status(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


async def test_the_service_is_healthy_and_its_database_exists(
    channel: grpc.aio.Channel, database: Path
) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    response = await health.Check(
        health_pb2.HealthCheckRequest(service="fluid.scheduler.v1.HistoryService")
    )
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    assert await asyncio.to_thread(database.is_file)


async def test_recorded_runs_are_read_back_by_the_client(
    stub: history_pb2_grpc.HistoryServiceAsyncStub, client: Client, make_run: MakeRun
) -> None:
    run = make_run(
        "r1",
        state=TaskState.success,
        params={"x": 1, "name": "a"},
        result={"sum": 3},
        tags=frozenset({"math"}),
        trace_context={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        start=T0 + timedelta(seconds=1),
        end=T0 + timedelta(seconds=2),
    )
    assert await _record(stub, run, make_run("r2", task="mul")) == 2
    assert await client.get_stored_run("r1") == run
    page = await client.list_runs(task="add", state=TaskState.success, params={"x": 1})
    assert page.runs == [run]
    assert page.next_cursor == ""


async def test_stale_snapshots_are_not_applied(
    stub: history_pb2_grpc.HistoryServiceAsyncStub, client: Client, make_run: MakeRun
) -> None:
    newer = make_run("r", state=TaskState.running, version=2)
    assert await _record(stub, newer) == 1
    assert await _record(stub, make_run("r", state=TaskState.queued, version=1), newer) == 0
    assert (await client.get_stored_run("r")).state is TaskState.running


async def test_skip_db_runs_are_not_applied(
    stub: history_pb2_grpc.HistoryServiceAsyncStub, client: Client, make_run: MakeRun
) -> None:
    assert await _record(stub, make_run("hidden", tags=frozenset({"skip_db"}))) == 0
    with pytest.raises(NotFoundError):
        await client.get_stored_run("hidden")


async def test_the_client_pages_with_cursors(
    stub: history_pb2_grpc.HistoryServiceAsyncStub, client: Client, make_run: MakeRun
) -> None:
    await _record(stub, *(make_run(f"r{index:03}") for index in range(120)))
    seen: list[str] = []
    cursor = ""
    while True:
        page = await client.list_runs(limit=50, cursor=cursor)
        seen.extend(run.id for run in page.runs)
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert seen == [f"r{index:03}" for index in reversed(range(120))]
    # Time filters travel as queued_after / queued_before.
    assert (await client.list_runs(start=T0, end=T0 + timedelta(seconds=1), limit=500)).runs
    assert not (await client.list_runs(end=T0)).runs
    assert [run.id for run in (await client.list_runs(tags=["none"])).runs] == []


async def test_an_unknown_run_is_not_found(
    stub: history_pb2_grpc.HistoryServiceAsyncStub, client: Client
) -> None:
    error = await _status(stub.GetRun(history_pb2.HistoryServiceGetRunRequest(run_id="nope")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "run nope not found"
    with pytest.raises(NotFoundError, match="run nope not found"):
        await client.get_stored_run("nope")


@asynccontextmanager
async def _serving(url: str | URL, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[int]:
    """A host serving history on the database at ``url``; yields its port."""
    rendered = url if isinstance(url, str) else url.render_as_string(hide_password=False)
    monkeypatch.setenv("FLUID_DATABASE_URL", rendered)
    host = Host(["history"], settings=ServerSettings(port=0))
    bound = await host.start()
    try:
        yield bound
    finally:
        await host.stop()


@pytest.fixture
async def on_each_database(
    database_url: str | URL, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[history_pb2_grpc.HistoryServiceAsyncStub, str]]:
    """A history stub on each database in turn, and that database's name."""
    async with (
        _serving(database_url, monkeypatch) as bound,
        grpc.aio.insecure_channel(f"127.0.0.1:{bound}") as opened,
    ):
        yield history_pb2_grpc.HistoryServiceStub(opened), make_url(database_url).get_backend_name()


def _refused(response: history_pb2.RecordRunsResponse) -> list[tuple[str, int]]:
    return [(refusal.run_id, refusal.version) for refusal in response.refused]


async def _stored_ids(stub: history_pb2_grpc.HistoryServiceAsyncStub) -> set[str]:
    response = await stub.ListRuns(history_pb2.ListRunsRequest(limit=500))
    return {run.id for run in response.runs}


def _set_nan_param(message: run_pb2.Run) -> None:
    message.params.update({"x": float("nan")})


def _set_infinite_result(message: run_pb2.Run) -> None:
    message.result.number_value = float("inf")


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (_set_nan_param, "params: "),
        (_set_infinite_result, "result: "),
        (lambda message: setattr(message.start, "seconds", 10**12), "start: "),
        (lambda message: setattr(message.queued, "seconds", -(10**12)), "queued: "),
        (lambda message: setattr(message.execute_after, "nanos", 2 * 10**9), "execute_after: "),
        (lambda message: setattr(message, "state", 0), "state: "),
        (lambda message: setattr(message, "state", 99), "state: "),
        (lambda message: setattr(message, "priority", 42), "priority: "),
        (lambda message: message.ClearField("id"), "id: required"),
        (lambda message: message.ClearField("task"), "task: required"),
    ],
    ids=[
        "nan-param",
        "infinite-result",
        "start-past-9999",
        "queued-before-year-1",
        "nanos-out-of-range",
        "unspecified-state",
        "unknown-state",
        "unknown-priority",
        "no-id",
        "no-task",
    ],
)
async def test_a_malformed_snapshot_is_refused_and_the_others_stored(
    on_each_database: tuple[history_pb2_grpc.HistoryServiceAsyncStub, str],
    make_run: MakeRun,
    mutate: Callable[[run_pb2.Run], object],
    reason: str,
) -> None:
    stub, _ = on_each_database
    bad = wire.run_to_pb(make_run("bad", version=5))
    mutate(bad)
    request = history_pb2.RecordRunsRequest(
        runs=[wire.run_to_pb(make_run("first")), bad, wire.run_to_pb(make_run("last"))]
    )
    response = await stub.RecordRuns(request)
    assert response.applied == 2
    assert _refused(response) == [(bad.id, 5)]
    assert response.refused[0].reason.startswith(reason)
    assert await _stored_ids(stub) == {"first", "last"}


async def test_a_snapshot_the_database_cannot_hold_is_refused_and_the_others_stored(
    on_each_database: tuple[history_pb2_grpc.HistoryServiceAsyncStub, str],
    make_run: MakeRun,
) -> None:
    stub, database = on_each_database
    good = [make_run(f"r{index}") for index in range(5)]
    nul_result = make_run("nul-result", version=3, result={"text": "a\x00b"})
    nul_error = make_run(
        "nul-error",
        version=2,
        state=TaskState.failure,
        error=RunError(type="ValueError", message="bad \x00 byte", traceback=""),
    )
    request = history_pb2.RecordRunsRequest(
        runs=[wire.run_to_pb(run) for run in [*good[:2], nul_result, *good[2:], nul_error]]
    )
    response = await stub.RecordRuns(request)
    if database == "postgresql":
        # JSONB cannot hold \u0000 and text columns cannot hold NUL.
        assert response.applied == len(good)
        assert _refused(response) == [("nul-error", 2), ("nul-result", 3)]
        for refusal in response.refused:
            assert refusal.reason.startswith("the database refused this snapshot: ")
        assert await _stored_ids(stub) == {run.id for run in good}
    else:
        # SQLite keeps them whole.
        assert response.applied == len(good) + 2
        assert not response.refused
        stored = await stub.GetRun(history_pb2.HistoryServiceGetRunRequest(run_id="nul-result"))
        assert wire.run_from_pb(stored.run) == nul_result
    # Sent again (a forwarder that lost the reply), nothing more is applied, and the
    # same snapshots are refused.
    again = await stub.RecordRuns(request)
    assert (again.applied, _refused(again)) == (0, _refused(response))


@pytest.mark.parametrize("with_refused_row", [False, True], ids=["batch", "while-splitting"])
async def test_a_connection_lost_mid_batch_is_unavailable(
    postgres: PostgresSchema,
    monkeypatch: pytest.MonkeyPatch,
    make_run: MakeRun,
    with_refused_row: bool,
) -> None:
    batch = [make_run(f"r{index}") for index in range(8)]
    if with_refused_row:
        # The cut then hits a half of the batch, written after the whole was refused.
        batch[5] = make_run("r5", result={"text": "\x00"})
    request = history_pb2.RecordRunsRequest(runs=[wire.run_to_pb(run) for run in batch])
    async with (
        _serving(postgres.url, monkeypatch) as bound,
        grpc.aio.insecure_channel(f"127.0.0.1:{bound}") as channel,
    ):
        stub = history_pb2_grpc.HistoryServiceStub(channel)
        async with first_upsert_cut(postgres.url) as cut:
            error = await _status(stub.RecordRuns(request))
        assert cut
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert await _stored_ids(stub) == set()
        # The forwarder sends the batch again once the database is back.
        response = await stub.RecordRuns(request)
        assert _refused(response) == ([("r5", 1)] if with_refused_row else [])
        assert response.applied == len(batch) - len(response.refused)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (history_pb2.ListRunsRequest(limit=501), "limit: at most 500"),
        (history_pb2.ListRunsRequest(limit=-1), "limit: must not be negative"),
        (history_pb2.ListRunsRequest(cursor="%%%"), "cursor: malformed"),
        (
            history_pb2.ListRunsRequest(
                queued_after=wire.timestamp(T0), queued_before=wire.timestamp(T0)
            ),
            "queued_after: ",
        ),
        (
            history_pb2.ListRunsRequest(
                states=[run_pb2.TASK_STATE_RUNNING, run_pb2.TaskState.ValueType(77)]
            ),
            "states[1]: ",
        ),
        (
            history_pb2.ListRunsRequest(
                params_contain=struct_pb2.Struct(
                    fields={"x": struct_pb2.Value(number_value=float("inf"))}
                )
            ),
            "params_contain: ",
        ),
        (
            history_pb2.ListRunsRequest(queued_before=timestamp_pb2.Timestamp(seconds=10**12)),
            "queued_before: ",
        ),
    ],
)
async def test_an_invalid_query_names_its_field(
    stub: history_pb2_grpc.HistoryServiceAsyncStub,
    request_: history_pb2.ListRunsRequest,
    message: str,
) -> None:
    error = await _status(stub.ListRuns(request_))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith(message)


async def test_client_sees_invalid_arguments_as_typed_errors(client: Client) -> None:
    with pytest.raises(InvalidArgumentError, match="limit: at most 500"):
        await client.list_runs(limit=501)
    with pytest.raises(InvalidArgumentError, match="cursor: malformed"):
        await client.list_runs(cursor="garbage")
    with pytest.raises(InvalidArgumentError, match="run_id"):
        await client.get_stored_run("")


async def test_unspecified_state_means_any_state(
    stub: history_pb2_grpc.HistoryServiceAsyncStub, make_run: MakeRun
) -> None:
    await _record(stub, make_run("a", state=TaskState.success))
    request = history_pb2.ListRunsRequest(states=[run_pb2.TASK_STATE_UNSPECIFIED])
    response = await stub.ListRuns(request)
    assert [run.id for run in response.runs] == ["a"]


async def test_without_migrate_on_start_an_unmigrated_database_stops_the_start(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLUID_HISTORY_MIGRATE_ON_START", "false")
    host = Host(["history"], settings=ServerSettings(port=0))
    with pytest.raises(SchemaNotCurrentError, match="fluid history migrate"):
        await host.start()


async def test_retention_deletes_expired_runs_in_the_background(
    database: Path, monkeypatch: pytest.MonkeyPatch, make_run: MakeRun
) -> None:
    monkeypatch.setenv("FLUID_HISTORY_RETENTION_DAYS", "1")
    monkeypatch.setenv("FLUID_HISTORY_RETENTION_INTERVAL_SECONDS", "0.02")
    host = Host(["history"], settings=ServerSettings(port=0))
    port = await host.start()
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
            Client(f"127.0.0.1:{port}") as client,
        ):
            now = utcnow()
            stub = history_pb2_grpc.HistoryServiceStub(channel)
            await _record(
                stub,
                make_run("expired", queued=now - timedelta(days=1, minutes=1)),
                make_run("kept", queued=now - timedelta(hours=23)),
            )
            for _ in range(250):
                if [run.id for run in (await client.list_runs()).runs] == ["kept"]:
                    break
                await asyncio.sleep(0.02)
            assert [run.id for run in (await client.list_runs()).runs] == ["kept"]
    finally:
        await host.stop()


async def test_a_starting_history_waits_for_its_database(tmp_path: Path) -> None:
    class LateDatabase(SqlRunStore):
        """Refuses to open twice, as a database still starting would."""

        refusals = 2

        async def open(self) -> None:
            if self.refusals:
                self.refusals -= 1
                raise UnavailableError("database starting")
            await super().open()

    store = LateDatabase(f"sqlite+aiosqlite:///{tmp_path / 'late.db'}")
    service = HistoryService(store, database_wait_seconds=30)
    await service.start()
    try:
        assert store.refusals == 0
    finally:
        await service.stop(1)

    gone = LateDatabase(f"sqlite+aiosqlite:///{tmp_path / 'gone.db'}")
    gone.refusals = 100
    with pytest.raises(UnavailableError):
        await HistoryService(gone, database_wait_seconds=0.1).start()
