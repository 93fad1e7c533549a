"""Tokens and roles on a real embedded system: every RPC of the table, row by row.

One system for the whole module (history, dispatcher, scheduler and an io-worker), with
two verification keys (an Ed25519 key and an HS256 secret, as during a rotation); the
services call each other with their own token from FLUID_TOKEN.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
import pytest_asyncio
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from fluid.scheduler import Client, TaskState
from fluid.scheduler.errors import PermissionDeniedError, UnauthenticatedError
from fluid.scheduler.v1 import dispatcher_pb2, dispatcher_pb2_grpc, history_pb2, scheduler_pb2
from fluid.service.auth import (
    METHOD_ROLES,
    AuthSettings,
    Key,
    Role,
    load_key,
    mint_token,
    write_signing_key,
)
from fluid.service.host import Host
from fluid.service.settings import ServerSettings

from history_polling import stored_run

pytestmark = pytest.mark.asyncio(loop_scope="module")

DENIED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}
SERVICES = {
    service.full_name: service
    for module in (dispatcher_pb2, history_pb2, scheduler_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
}


@dataclass
class Secured:
    host: Host
    ed25519: Key
    hs256: Key
    stranger: Key

    def token(self, *roles: Role, key: Key | None = None) -> str:
        return mint_token(key or self.ed25519, "test", roles, 300)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def secured(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Secured]:
    folder = tmp_path_factory.mktemp("auth")
    ed25519 = write_signing_key(folder / "ed25519.key")
    (folder / "hs256.secret").write_text(secrets.token_hex(32))
    hs256 = load_key(folder / "hs256.secret")
    stranger = write_signing_key(folder / "stranger.key")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FLUID_AUTH_KEY_FILES", f"{folder / 'ed25519.key'},{folder / 'hs256.secret'}")
        env.setenv("FLUID_TOKEN", mint_token(ed25519, "services", list(Role), 300))
        env.setenv("FLUID_BROKER_URL", "memory://")
        env.setenv("FLUID_DATABASE_URL", f"sqlite+aiosqlite:///{folder / 'history.db'}")
        env.setenv("FLUID_LEASE_WAIT_SECONDS", "0.2")
        host = Host(
            ["history", "dispatcher", "scheduler", "io-worker"],
            settings=ServerSettings(port=0, shutdown_grace_seconds=1),
            task_modules=["sample_tasks"],
        )
        await host.start()
        try:
            yield Secured(host, ed25519, hs256, stranger)
        finally:
            await host.stop()


def _method(full_name: str) -> MethodDescriptor:
    service, _, name = full_name.strip("/").partition("/")
    found: MethodDescriptor = SERVICES[service].methods_by_name[name]
    return found


async def status_of(address: str, full_name: str, token: str | None) -> grpc.StatusCode:
    """The status an empty request to ``full_name`` ends with, sending ``token``."""
    method = _method(full_name)
    request_class: Any = message_factory.GetMessageClass(method.input_type)
    response_class: Any = message_factory.GetMessageClass(method.output_type)
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else None
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            if method.server_streaming:
                stream = channel.unary_stream(
                    full_name,
                    request_serializer=request_class.SerializeToString,
                    response_deserializer=response_class.FromString,
                )
                async for _ in stream(request_class(), metadata=metadata, timeout=1):
                    break
            else:
                unary = channel.unary_unary(
                    full_name,
                    request_serializer=request_class.SerializeToString,
                    response_deserializer=response_class.FromString,
                )
                await unary(request_class(), metadata=metadata, timeout=1)
        except grpc.aio.AioRpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def _expired(key: Key) -> str:
    now = int(time.time())
    claims = {"iss": "fluid", "sub": "old", "roles": ["admin"], "iat": now - 7200}
    return jwt.encode(
        {**claims, "exp": now - 3600}, key.signing, key.algorithm, headers={"kid": key.kid}
    )


@pytest.mark.parametrize(("method", "role"), sorted(METHOD_ROLES.items()))
async def test_each_rpc_needs_its_role(secured: Secured, method: str, role: Role) -> None:
    address = secured.host.address
    others = [other for other in Role if other not in (role, Role.admin)]
    assert await status_of(address, method, None) is grpc.StatusCode.UNAUTHENTICATED
    assert await status_of(address, method, "garbled") is grpc.StatusCode.UNAUTHENTICATED
    assert (
        await status_of(address, method, secured.token(*others))
        is grpc.StatusCode.PERMISSION_DENIED
    )
    assert await status_of(address, method, secured.token(role)) not in DENIED
    assert await status_of(address, method, secured.token(Role.admin)) not in DENIED
    assert (
        await status_of(address, method, _expired(secured.ed25519))
        is grpc.StatusCode.UNAUTHENTICATED
    )
    assert (
        await status_of(address, method, secured.token(Role.admin, key=secured.stranger))
        is grpc.StatusCode.UNAUTHENTICATED
    )


async def test_the_denials_say_why(secured: Secured) -> None:
    async with Client(secured.host.address, token="") as anonymous:
        with pytest.raises(UnauthenticatedError, match="missing bearer token"):
            await anonymous.list_tasks()
    async with Client(secured.host.address, token=_expired(secured.ed25519)) as late:
        with pytest.raises(UnauthenticatedError, match="expired"):
            await late.list_tasks()
    stranger = secured.token(Role.admin, key=secured.stranger)
    async with Client(secured.host.address, token=stranger) as forged:
        with pytest.raises(UnauthenticatedError, match="unknown key"):
            await forged.list_tasks()
    async with Client(secured.host.address, token=secured.token(Role.read)) as reader:
        with pytest.raises(PermissionDeniedError, match="needs the queue role"):
            await reader.queue_run("say_hi", {"name": "Ada"})


async def test_health_is_open_and_reflection_closed_by_default(secured: Secured) -> None:
    async with grpc.aio.insecure_channel(secured.host.address) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        stream = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stream.read()
        assert denied.value.code() is grpc.StatusCode.UNIMPLEMENTED


async def test_reflection_opens_by_setting(tmp_path: Path) -> None:
    write_signing_key(tmp_path / "k")
    host = Host(
        ["dispatcher"],
        settings=ServerSettings(port=0, shutdown_grace_seconds=0),
        auth=AuthSettings(auth_key_files=[str(tmp_path / "k")], reflection=True),
    )
    await host.start()
    try:
        async with grpc.aio.insecure_channel(host.address) as channel:
            stream = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")])
            )
            answer = await stream.read()
            assert isinstance(answer, reflection_pb2.ServerReflectionResponse)
            names = {service.name for service in answer.list_services_response.service}
            assert "fluid.scheduler.v1.DispatcherService" in names
    finally:
        await host.stop()


async def test_tokens_of_both_keys_are_accepted(secured: Secured) -> None:
    for key in (secured.ed25519, secured.hs256):
        async with Client(secured.host.address, token=secured.token(Role.read, key=key)) as c:
            assert "say_hi" in {task.name for task in await c.list_tasks()}


async def test_the_services_call_each_other_with_their_token(
    secured: Secured, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Client() reads FLUID_TOKEN like every fluid process; the worker leases and reports
    # with the services' token, the forwarder records into history with it.
    monkeypatch.setenv("FLUID_TOKEN", secured.token(Role.read, Role.queue))
    async with Client(secured.host.address) as client:
        run = await client.queue_and_wait("say_hi", timeout=20, name="Ada")
        assert run.state is TaskState.success
        assert (await stored_run(client, run.id, TaskState.success)).id == run.id


async def test_task_code_calls_fluid_with_the_task_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The services' token lacks `queue`: a child run queued by an io task, or by a cpu
    task from its own process, gets queued only with FLUID_TASK_TOKEN, and the cpu
    process holds that token, never the worker's."""
    key = write_signing_key(tmp_path / "signing.key")
    monkeypatch.setenv("FLUID_AUTH_KEY_FILES", str(tmp_path / "signing.key"))
    services = [Role.worker, Role.ingest, Role.read]
    monkeypatch.setenv("FLUID_TOKEN", mint_token(key, "services", services, 300))
    monkeypatch.setenv("FLUID_TASK_TOKEN", mint_token(key, "tasks", [Role.queue, Role.read], 300))
    monkeypatch.setenv("FLUID_BROKER_URL", "memory://")
    monkeypatch.setenv("FLUID_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'history.db'}")
    monkeypatch.setenv("FLUID_LEASE_WAIT_SECONDS", "0.2")
    # The run's process imports sample_tasks by name, as the runner does.
    tests = str(Path(__file__).parent)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))
    )
    host = Host(
        ["history", "dispatcher", "io-worker", "cpu-runner"],
        settings=ServerSettings(port=0, shutdown_grace_seconds=1),
        task_modules=["sample_tasks"],
    )
    await host.start()
    try:
        async with Client(host.address, token=mint_token(key, "ada", list(Role), 300)) as client:
            for name in ("parent", "relay"):
                run = await client.queue_and_wait(name, timeout=30, name="Ada")
                assert run.state is TaskState.success, (name, run.error)
                child = await client.wait(run.result, timeout=10)
                assert child.state is TaskState.success, name
            roles = await client.queue_and_wait("token_roles", timeout=30)
            assert roles.result == ["queue", "read"]
    finally:
        await host.stop()


async def test_a_fake_worker_cannot_take_over_a_task(secured: Secured) -> None:
    request = dispatcher_pb2.RegisterWorkerRequest(worker_id="intruder")
    request.tasks.add(name="say_hi", description="not the real say_hi")
    metadata = (("authorization", f"Bearer {secured.token(Role.read, Role.queue)}"),)
    async with grpc.aio.insecure_channel(secured.host.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await dispatcher_pb2_grpc.DispatcherServiceStub(channel).RegisterWorker(
                request, metadata=metadata
            )
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "needs the worker role" in (refused.value.details() or "")
    queuer = secured.token(Role.read, Role.queue)
    async with Client(secured.host.address, token=queuer) as client:
        run = await client.queue_and_wait("say_hi", timeout=20, name="Bo")
    assert run.state is TaskState.success and run.result == "Hi Bo!"
