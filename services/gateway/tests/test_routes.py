"""The gateway's HTTP routes against a real system: history, dispatcher, an io-worker and
the gateway in one host, spoken to over HTTP with httpx."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from fluid.scheduler import Client, TaskPriority
from fluid.service.auth import Role, mint_token, write_signing_key

from embedded import gateway_system

pytestmark = pytest.mark.asyncio(loop_scope="module")

# The gRPC address of the module's system, for what a test sets up without HTTP.
SYSTEM: dict[str, str] = {}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_system(tmp_path_factory.mktemp("gateway")) as (host, url):
        SYSTEM["address"] = host.address
        async with httpx.AsyncClient(base_url=url, timeout=20) as client:
            yield client


async def finished(http: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    for _ in range(200):
        run: dict[str, Any] = (await http.get(f"/runs/{run_id}")).json()
        if run["state"] not in ("queued", "running"):
            return run
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


async def test_tasks_are_listed_and_filtered_by_tag(http: httpx.AsyncClient) -> None:
    listed = await http.get("/tasks")
    assert listed.status_code == 200
    names = [task["name"] for task in listed.json()]
    assert "say_hi" in names and names == sorted(names)
    tagged = (await http.get("/tasks", params={"tags": "billing"})).json()
    assert [task["name"] for task in tagged] == ["tagged"]
    one = await http.get("/tasks/say_hi")
    assert one.status_code == 200 and one.json()["params_schema"]["required"] == ["name"]
    assert (await http.get("/tasks/nope")).status_code == 404


async def test_queue_a_run_with_its_params_and_follow_it(http: httpx.AsyncClient) -> None:
    queued = await http.post("/tasks/say_hi", json={"name": "Ada"})
    assert queued.status_code == 200, queued.text
    run = await finished(http, queued.json()["id"])
    assert run["state"] == "success" and run["result"] == "Hi Ada!"
    refused = await http.post("/tasks/say_hi", json={})
    assert refused.status_code == 422 and "name" in refused.json()["detail"]
    assert (await http.post("/tasks/nope", json={})).status_code == 404
    not_json = await http.post(
        "/tasks/say_hi", content=b"{", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422


async def test_disable_and_enable_a_task(http: httpx.AsyncClient) -> None:
    off = await http.patch("/tasks/say_hi", json={"enabled": False})
    assert off.status_code == 200 and off.json()["enabled"] is False
    run = await finished(http, (await http.post("/tasks/say_hi", json={"name": "Bo"})).json()["id"])
    assert run["state"] == "aborted"
    on = await http.patch("/tasks/say_hi", json={"enabled": True})
    assert on.json()["enabled"] is True
    assert (await http.patch("/tasks/say_hi", json={"enabled": "maybe"})).status_code == 422
    assert (await http.patch("/tasks/nope", json={"enabled": True})).status_code == 404


async def test_status_history_and_one_stored_run(http: httpx.AsyncClient) -> None:
    status = (await http.get("/tasks-status")).json()
    assert set(status["queue"]) == {"high", "medium", "low"}
    run_id = (await http.post("/tasks/say_hi", json={"name": "Cy"})).json()["id"]
    await finished(http, run_id)
    for _ in range(100):  # history is written after the fact
        page = (
            await http.get("/tasks-history", params={"task": "say_hi", "state": "success"})
        ).json()
        if run_id in [run["id"] for run in page["data"]]:
            break
        await asyncio.sleep(0.1)
    assert run_id in [run["id"] for run in page["data"]] and "cursor" in page
    contained = await http.get("/tasks-history", params={"params": json.dumps({"name": "Cy"})})
    assert [run["id"] for run in contained.json()["data"]] == [run_id]
    assert (await http.get(f"/tasks-history/{run_id}")).json()["state"] == "success"
    assert (await http.get("/tasks-history/" + "0" * 32)).status_code == 404
    assert (await http.get("/tasks-history", params={"params": "{"})).status_code == 422
    assert (await http.get("/tasks-history", params={"limit": 0})).status_code == 422


async def test_abort_rerun_and_the_events_of_a_run(http: httpx.AsyncClient) -> None:
    sleeping = (await http.post("/tasks/sleeper", json={"seconds": 30})).json()
    for _ in range(100):
        if (await http.get(f"/runs/{sleeping['id']}")).json()["state"] == "running":
            break
        await asyncio.sleep(0.05)
    aborted = await http.post(f"/runs/{sleeping['id']}/abort", json={"reason": "enough"})
    assert aborted.status_code == 200
    assert (await finished(http, sleeping["id"]))["state"] == "aborted"

    first = (await http.post("/tasks/say_hi", json={"name": "Di"})).json()
    again = await http.post(f"/runs/{first['id']}/rerun")
    assert again.status_code == 200 and again.json()["id"] != first["id"]
    assert again.json()["params"] == {"name": "Di"}
    async with http.stream("GET", f"/runs/{again.json()['id']}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = [line async for line in stream.aiter_lines() if line.startswith("event: ")]
    assert events[-1] == "event: success"
    assert (await http.get("/runs/" + "0" * 32 + "/events")).status_code == 404
    assert (await http.post("/runs/" + "0" * 32 + "/abort")).status_code == 404


async def test_a_run_with_secrets_is_not_rerun_with_the_mask(http: httpx.AsyncClient) -> None:
    login = await http.post("/tasks/login", json={"user": "ann", "token": "s3cret"})
    assert login.status_code == 200, login.text
    assert login.json()["params"]["token"] == "**********"
    refused = await http.post(f"/runs/{login.json()['id']}/rerun")
    assert refused.status_code == 409 and "secret" in refused.json()["detail"]


async def test_schedules_workers_and_the_caller(http: httpx.AsyncClient) -> None:
    for _ in range(100):  # the scheduler learns the schedules from the dispatcher
        schedules = (await http.get("/schedules")).json()
        if schedules["schedules"]:
            break
        await asyncio.sleep(0.1)
    (tick,) = [item for item in schedules["schedules"] if item["task"] == "tick"]
    assert tick["schedule"].startswith("every") and schedules["leader_id"]
    workers = (await http.get("/workers")).json()
    assert [worker["kind"] for worker in workers] == ["io"]
    # Auth is off here: anyone may do anything.
    assert (await http.get("/whoami")).json()["auth"] is False


async def test_dead_letters_and_the_api_description(http: httpx.AsyncClient) -> None:
    letters = await http.get("/dead-letters")
    assert letters.status_code == 200 and letters.json()["data"] == []
    assert (await http.post("/dead-letters/retry", json={})).status_code == 422
    assert (await http.post("/dead-letters/drop", json={"all": True})).json() == {"dropped": 0}
    assert (await http.delete("/tasks-queue/urgent")).status_code == 422
    docs = await http.get("/openapi.json")
    assert "/tasks/{name}" in docs.json()["paths"]


@pytest.mark.asyncio(loop_scope="function")
async def test_with_auth_each_caller_acts_with_their_own_token(tmp_path: Path) -> None:
    key = write_signing_key(tmp_path / "signing.key")
    services = ("history", "dispatcher", "io-worker", "gateway")
    async with (
        gateway_system(tmp_path, services, auth_key_file=tmp_path / "signing.key") as (
            _,
            url,
        ),
        httpx.AsyncClient(base_url=url, timeout=20) as anonymous,
    ):
        # The gateway lends none of the services' rights to a caller with no token.
        refused = await anonymous.get("/tasks")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        reader = {"authorization": f"Bearer {mint_token(key, 'ann', [Role.read], 60)}"}
        assert (await anonymous.get("/tasks", headers=reader)).status_code == 200
        denied = await anonymous.post("/tasks/say_hi", json={"name": "x"}, headers=reader)
        assert denied.status_code == 403 and "queue role" in denied.json()["detail"]
        queuer = {"authorization": f"Bearer {mint_token(key, 'bo', [Role.queue], 60)}"}
        queued = await anonymous.post("/tasks/say_hi", json={"name": "x"}, headers=queuer)
        assert queued.status_code == 200
        me = (await anonymous.get("/whoami", headers=reader)).json()
        assert (me["auth"], me["subject"], me["roles"]) == (True, "ann", ["read"])
        assert (await anonymous.get("/whoami")).json()["roles"] == []


async def stored_ids(http: httpx.AsyncClient, state: str, wanted: set[str]) -> set[str]:
    """The ids of ``wanted`` history lists in ``state`` (waiting a little: it lags)."""
    for _ in range(100):
        page = (await http.get("/tasks-history", params={"state": state, "limit": 500})).json()
        found = {run["id"] for run in page["data"]} & wanted
        if found == wanted:
            return found
        await asyncio.sleep(0.1)
    return found


async def test_bulk_actions_count_first_and_clearing_the_queue_aborts(
    http: httpx.AsyncClient,
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    async with Client(SYSTEM["address"]) as client:
        low = [
            await client.queue_run(
                "say_hi", {"name": f"l{n}"}, priority=TaskPriority.low, execute_after=later
            )
            for n in range(3)
        ]
        high = await client.queue_run(
            "say_hi", {"name": "h"}, priority=TaskPriority.high, execute_after=later
        )
    ids = {run.id for run in low}
    assert await stored_ids(http, "queued", ids | {high.id}) == ids | {high.id}
    dry = await http.post(
        "/runs/bulk", json={"action": "rerun", "task": "say_hi", "state": "queued"}
    )
    assert dry.status_code == 200 and dry.json()["matched"] >= 4 and dry.json()["done"] == []
    assert (await http.post("/runs/bulk", json={"action": "explode"})).status_code == 422
    assert (
        await http.post("/runs/bulk", json={"action": "abort", "limit": 10**6})
    ).status_code == 422

    cleared = (await http.delete("/tasks-queue/low")).json()
    assert ids <= set(cleared["done"]) and high.id not in cleared["done"]
    assert await stored_ids(http, "aborted", ids) == ids
    assert (await http.get(f"/runs/{high.id}")).json()["state"] == "queued"
    rest = (await http.delete("/tasks-queue")).json()
    assert high.id in rest["done"]


async def test_the_feed_of_every_change_streams_the_tasks_asked_for(
    http: httpx.AsyncClient,
) -> None:
    states: list[str] = []
    async with http.stream("GET", "/runs/events", params={"task": "say_hi"}) as stream:
        lines = stream.aiter_lines()
        assert await anext(lines) == ": watching"  # connected before any change
        other = (await http.post("/tasks/tagged", json={})).json()
        run = (await http.post("/tasks/say_hi", json={"name": "Feed"})).json()
        async with asyncio.timeout(20):
            async for line in lines:
                if line.startswith("data: "):
                    seen = json.loads(line.removeprefix("data: "))
                    assert seen["id"] != other["id"], "a run of another task"
                    if seen["id"] == run["id"]:
                        states.append(seen["state"])
                        if seen["state"] == "success":
                            break
    assert states[-1] == "success" and "running" in states
