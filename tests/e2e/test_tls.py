"""TLS and mTLS on real gRPC servers: handshakes, certificate reload, a system over mTLS.

Each process reads its FLUID_TLS_* variables when it binds its port or opens a channel,
so a test sets the server's, starts the host, then sets the client's.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fluid.scheduler import Client, TaskState
from fluid.service import host as host_module
from fluid.service.channel import open_channel
from fluid.service.host import Host
from fluid.service.settings import ServerSettings
from fluid.service.tls import TlsConfigError, TlsSettings, create_channel

from certificates import CertificateAuthority, Pair
from history_polling import stored_run

VARIABLES = ("cert", "key", "ca", "server_name")


def tls_env(
    monkeypatch: pytest.MonkeyPatch, pair: Pair | None = None, **values: Path | str | None
) -> None:
    """Set exactly these FLUID_TLS_* variables (a ``pair`` is cert and key), clear the rest."""
    if pair is not None:
        values.update(cert=pair.cert, key=pair.key)
    for name in VARIABLES:
        variable = f"FLUID_TLS_{name.upper()}" + ("_FILE" if name != "server_name" else "")
        value = values.get(name)
        if value is None:
            monkeypatch.delenv(variable, raising=False)
        else:
            monkeypatch.setenv(variable, str(value))


class Idle:
    """A service with no servicer: the host's health service is what the tests call."""

    name = "idle"

    def attach(self, server: grpc.aio.Server) -> list[str]:
        return []

    async def start(self) -> None:
        return None

    async def stop(self, grace: float) -> None:
        return None


class IdleEntryPoint:
    def load(self) -> Any:
        return lambda context: Idle()


@asynccontextmanager
async def serving(
    monkeypatch: pytest.MonkeyPatch, pair: Pair, ca: Path | None = None
) -> AsyncIterator[str]:
    """A host on port 0 serving ``pair`` (mTLS with ``ca``); the variables are cleared
    once it listens, for the test to set the client's."""
    monkeypatch.setattr(host_module, "available_services", lambda: {"idle": IdleEntryPoint()})
    tls_env(monkeypatch, pair, ca=ca)
    host = Host(["idle"], settings=ServerSettings(port=0, shutdown_grace_seconds=0))
    await host.start()
    tls_env(monkeypatch)
    try:
        yield host.address
    finally:
        await host.stop()


async def check(address: str) -> str:
    """SERVING, or the status code the call failed with (UNAVAILABLE: no handshake)."""
    async with open_channel(address) as channel:
        try:
            response = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        except grpc.aio.AioRpcError as error:
            return error.code().name
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


async def scheduled_run(client: Client, task: str, attempts: int = 100) -> str:
    """The id of the last run the scheduler queued for ``task`` (bounded polling)."""
    for _ in range(attempts):
        status = await client.list_schedules()
        run_id = next((info.last_run_id for info in status.schedules if info.task == task), "")
        if run_id:
            return run_id
        await asyncio.sleep(0.1)
    raise AssertionError(f"the scheduler queued no run of {task}")


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path, "fluid")


@pytest.fixture
def other_ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path, "stranger")


async def test_tls_is_trusted_only_with_the_servers_ca(
    monkeypatch: pytest.MonkeyPatch, ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    async with serving(monkeypatch, ca.issue("server")) as address:
        tls_env(monkeypatch, ca=ca.cert)
        assert await check(address) == "SERVING"
        tls_env(monkeypatch, ca=other_ca.cert)
        assert await check(address) == "UNAVAILABLE"
        tls_env(monkeypatch)  # plaintext
        assert await check(address) == "UNAVAILABLE"


async def test_a_channel_checks_the_server_name_it_is_told(
    monkeypatch: pytest.MonkeyPatch, ca: CertificateAuthority
) -> None:
    pair = ca.issue("dispatcher", ("dispatcher.fluid.test",), ip=False)
    async with serving(monkeypatch, pair) as address:
        tls_env(monkeypatch, ca=ca.cert)
        assert await check(address) == "UNAVAILABLE"  # 127.0.0.1 is not in its names
        tls_env(monkeypatch, ca=ca.cert, server_name="dispatcher.fluid.test")
        assert await check(address) == "SERVING"


async def test_mtls_takes_only_client_certificates_of_its_ca(
    monkeypatch: pytest.MonkeyPatch, ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    async with serving(monkeypatch, ca.issue("server"), ca=ca.cert) as address:
        tls_env(monkeypatch, ca.issue("client"), ca=ca.cert)
        assert await check(address) == "SERVING"
        tls_env(monkeypatch, ca=ca.cert)  # no client certificate
        assert await check(address) == "UNAVAILABLE"
        tls_env(monkeypatch, other_ca.issue("client"), ca=ca.cert)
        assert await check(address) == "UNAVAILABLE"


async def test_rotated_certificate_files_serve_new_connections_without_a_restart(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    ca: CertificateAuthority,
    other_ca: CertificateAuthority,
) -> None:
    served = Pair(cert=tmp_path / "tls.crt", key=tmp_path / "tls.key")
    first = ca.issue("server")
    served.cert.write_bytes(first.cert.read_bytes())
    served.key.write_bytes(first.key.read_bytes())
    async with serving(monkeypatch, served) as address:
        tls_env(monkeypatch, ca=ca.cert)
        assert await check(address) == "SERVING"
        second = other_ca.issue("server")
        # Half rotated: the new certificate beside the old key is refused, the old pair
        # keeps serving.
        served.cert.write_bytes(second.cert.read_bytes())
        assert await check(address) == "SERVING"
        served.key.write_bytes(second.key.read_bytes())
        assert await check(address) == "UNAVAILABLE"
        tls_env(monkeypatch, ca=other_ca.cert)
        assert await check(address) == "SERVING"


@pytest.mark.parametrize(
    ("alone", "message"),
    [
        ("cert", "FLUID_TLS_CERT_FILE is set but FLUID_TLS_KEY_FILE is not"),
        ("key", "FLUID_TLS_KEY_FILE is set but FLUID_TLS_CERT_FILE is not"),
    ],
)
async def test_a_certificate_or_key_alone_stops_the_host_at_start(
    monkeypatch: pytest.MonkeyPatch, ca: CertificateAuthority, alone: str, message: str
) -> None:
    pair = ca.issue("server")
    monkeypatch.setattr(host_module, "available_services", lambda: {"idle": IdleEntryPoint()})
    tls_env(monkeypatch, **{alone: getattr(pair, alone)})
    host = Host(["idle"], settings=ServerSettings(port=0))
    with pytest.raises(TlsConfigError, match=message):
        await host.start()


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ("missing_ca", "FLUID_TLS_CA_FILE=.*: cannot read it"),
        ("garbage_cert", "FLUID_TLS_CERT_FILE=.*: not a PEM certificate"),
        ("garbage_key", "FLUID_TLS_KEY_FILE=.*: not an unencrypted PEM private key"),
        ("other_key", "FLUID_TLS_KEY_FILE=.* is not the key of FLUID_TLS_CERT_FILE"),
    ],
)
def test_unusable_files_are_named_with_their_variable(
    tmp_path: Path, ca: CertificateAuthority, broken: str, message: str
) -> None:
    pair, stranger = ca.issue("client"), ca.issue("stranger")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not PEM")
    files = {"cert": pair.cert, "key": pair.key, "ca": ca.cert}
    files.update(
        {
            "missing_ca": {"ca": tmp_path / "absent.pem"},
            "garbage_cert": {"cert": garbage},
            "garbage_key": {"key": garbage},
            "other_key": {"key": stranger.key},
        }[broken]
    )
    settings = TlsSettings(
        tls_cert_file=str(files["cert"]),
        tls_key_file=str(files["key"]),
        tls_ca_file=str(files["ca"]),
    )
    with pytest.raises(TlsConfigError, match=message):
        create_channel("127.0.0.1:1", settings, options=[], interceptors=[])


async def test_a_whole_system_works_over_mtls(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ca: CertificateAuthority
) -> None:
    """Every service in one host, as `fluid dev`, with mTLS required: the client, the
    workers, the scheduler, the history forwarder and a cpu run's own process all dial
    through TLS with a client certificate, or nothing would run."""
    monkeypatch.setenv("FLUID_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'history.db'}")
    monkeypatch.setenv("FLUID_BROKER_URL", "memory://")
    monkeypatch.setenv("FLUID_LEASE_WAIT_SECONDS", "0.2")
    # The run's process imports sample_tasks by name, as the runner does.
    tests = str(Path(__file__).parents[1])
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))
    )
    tls_env(monkeypatch, ca.issue("fluid"), ca=ca.cert)
    host = Host(
        ["history", "dispatcher", "scheduler", "io-worker", "cpu-runner"],
        settings=ServerSettings(port=0, shutdown_grace_seconds=2),
        task_modules=["sample_tasks"],
    )
    await host.start()
    try:
        async with Client(host.address) as client:
            relay = await client.queue_and_wait("relay", name="Ada", timeout=30)
            assert relay.state is TaskState.success, relay.error
            hi = await client.wait(relay.result, timeout=10)
            assert hi.state is TaskState.success and hi.result == "Hi Ada!"
            stored = await stored_run(client, hi.id, TaskState.success)
            assert stored.result == "Hi Ada!"
            assert await scheduled_run(client, "tick")
    finally:
        await host.stop()
