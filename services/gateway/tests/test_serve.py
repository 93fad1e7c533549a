"""`fluid serve gateway` alone, as its Deployment runs it: a process of its own that finds
the other services by address, answers gRPC health for probes and HTTP on its port."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fluid.service.host import Host
from fluid.service.settings import ServerSettings

from process_helpers import dev, free_port, serve, serving, stop_processes

TESTS = Path(__file__).resolve().parents[3] / "tests"


@pytest.fixture
def http_port() -> Iterator[int]:
    yield free_port()


async def test_the_gateway_runs_alone_beside_the_system(tmp_path: Path, http_port: int) -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FLUID_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'history.db'}")
        env.setenv("FLUID_BROKER_URL", "memory://")
        env.syspath_prepend(str(TESTS))
        host = Host(
            ["history", "dispatcher", "io-worker"],
            settings=ServerSettings(port=0, shutdown_grace_seconds=1),
            task_modules=["sample_tasks"],
        )
        await host.start()
    port = free_port()
    variables = {name: value for name, value in os.environ.items() if not name.startswith("FLUID_")}
    gateway = serve(
        "gateway",
        port,
        {**variables, "FLUID_ADDRESS": host.address, "FLUID_HTTP_PORT": str(http_port)},
        tmp_path / "gateway.log",
    )
    try:
        await serving(f"127.0.0.1:{port}")  # the probes' gRPC health
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http:
            for _ in range(50):  # health turns SERVING once every service started
                try:
                    tasks = await http.get("/tasks")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.1)
            assert tasks.status_code == 200
            assert "say_hi" in [task["name"] for task in tasks.json()]
    finally:
        (code,) = stop_processes([gateway])
        await host.stop()
    assert code == 0, (tmp_path / "gateway.log").read_text()


@pytest.fixture
def fluid_dev(tmp_path: Path, http_port: int) -> Iterator[str]:
    """`fluid dev` as a newcomer runs it (its example tasks), on free ports."""
    variables = {name: value for name, value in os.environ.items() if not name.startswith("FLUID_")}
    variables["FLUID_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
    log = tmp_path / "dev.log"
    with log.open("w") as output:
        process = dev(free_port(), http_port, variables, output, cwd=tmp_path)
        try:
            yield f"http://127.0.0.1:{http_port}"
        finally:
            (code,) = stop_processes([process])
            assert code == 0, log.read_text()
    assert f"dashboard: http://127.0.0.1:{http_port}/" in log.read_text()


async def test_fluid_dev_serves_the_dashboard_and_the_seed_routes(fluid_dev: str) -> None:
    async with httpx.AsyncClient(base_url=fluid_dev, timeout=10) as http:
        for _ in range(100):  # the example tasks register once the worker starts
            try:
                tasks = (await http.get("/tasks")).json()
                if "say_hi" in [task["name"] for task in tasks]:
                    break
            except httpx.ConnectError:
                pass
            await asyncio.sleep(0.1)
        assert "say_hi" in [task["name"] for task in tasks]
        page = await http.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        queued = await http.post("/tasks/say_hi", json={"name": "Ada"})
        assert queued.status_code == 200 and queued.json()["state"] == "queued"
        refused = await http.post("/tasks/say_hi", json={})
        assert refused.status_code == 422 and "name" in refused.json()["detail"]
