"""The dashboard in a real headless Chromium (Debian's, driven by Playwright) against a real
system: history, dispatcher, scheduler, an io-worker and the gateway in one host.

A missing chromium fails these tests under CI (CI=true) and skips them elsewhere; nothing here
downloads a browser. Each page's screenshot is written under .build/screenshots/.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright, expect

from fluid.service.auth import Role, mint_token, write_signing_key

from embedded import gateway_system

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[3]
SCREENSHOTS = ROOT / ".build" / "screenshots"
CHROMIUM = os.environ.get("FLUID_TEST_CHROMIUM", "/usr/bin/chromium")
# Every wait in the browser is bounded by this (milliseconds).
WAIT_MS = 15_000


def chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        message = f"chromium is not installed at {CHROMIUM} (make services installs it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + " (CI=true: a missing browser is a failure)")
        pytest.skip(message)
    return CHROMIUM


@contextlib.asynccontextmanager
async def launched_chromium() -> AsyncIterator[Browser]:
    path = chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=path, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with launched_chromium() as launched:
        yield launched


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    async with gateway_system(tmp_path_factory.mktemp("dashboard")) as (_, address):
        yield address


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Browser, url: str) -> AsyncIterator[Page]:
    context = await browser.new_context(base_url=url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    opened = await context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
    finally:
        await context.close()
    assert not errors, f"the page threw: {errors}"


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def api(url: str, method: str, path: str, **kwargs: Any) -> Any:
    async with httpx.AsyncClient(base_url=url, timeout=20) as http:
        answer = await http.request(method, path, **kwargs)
        answer.raise_for_status()
        return answer.json()


async def until(condition: Any, what: str, seconds: float = 15) -> Any:
    for _ in range(int(seconds / 0.1)):
        value = await condition()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_the_gateway_serves_the_page_beside_the_json_routes(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=20) as http:
        index = await http.get("/")
        assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
        assert 'src="assets/app.js"' in index.text
        script = await http.get("/assets/app.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert script.headers["cache-control"] == "no-cache"
        assert (await http.get("/assets/style.css")).status_code == 200
        assert (await http.get("/assets/nope.js")).status_code == 404
        assert isinstance((await http.get("/tasks")).json(), list)
        assert (await http.get("/docs")).status_code == 200
        assert "/" not in (await http.get("/openapi.json")).json()["paths"]


async def test_overview(page: Page, url: str) -> None:
    async def finished_runs() -> bool:
        stored = await api(url, "GET", "/tasks-history", params={"state": "success"})
        return bool(stored["data"])

    await until(finished_runs, "a finished run in history (the scheduler's tick)")
    await page.goto("/")
    overview = page.locator("[data-page=overview]")
    await expect(overview).to_be_visible()
    await expect(page.locator("[data-priority=high]")).to_have_text(re.compile(r"^\d+$"))
    await expect(page.get_by_test_id("dead-letters").locator(".big")).to_have_text("0")
    await expect(page.locator(".workers-load li")).to_have_count(1)
    await expect(page.locator(".workers-load .tag")).to_have_text("io")
    await expect(page.get_by_test_id("scheduler")).to_contain_text("lateness over")
    # The chart is drawn from history: the scheduler's `tick` runs every second.
    await expect(page.get_by_test_id("throughput-chart")).to_be_visible()
    await expect(page.locator(".chart figcaption")).to_contain_text(re.compile(r"finished \([1-9]"))
    await screenshot(page, "overview")


async def test_queue_say_hi_from_its_form_and_watch_it_succeed(page: Page) -> None:
    await page.goto("/#/tasks/say_hi")
    form = page.get_by_test_id("queue-form")
    await expect(form.locator("abbr.required")).to_have_count(1)  # name is required
    # Nothing filled in: the gateway's 422 names the missing field.
    await form.get_by_role("button", name="Queue a run").click()
    await expect(page.get_by_test_id("queue-error")).to_contain_text("name")
    await screenshot(page, "task-form")
    await page.evaluate("window.__sameDocument = true")
    await form.locator("input[name=name]").fill("Ada")
    await form.get_by_role("button", name="Queue a run").click()
    await expect(page).to_have_url(re.compile(r"#/runs/[0-9a-f]+$"))
    run = page.locator("[data-page=run]")
    await expect(run.locator(".headline [data-state]")).to_have_text("success")
    await expect(page.get_by_test_id("result")).to_have_text('"Hi Ada!"')
    await expect(page.get_by_test_id("params")).to_contain_text('"name": "Ada"')
    # No reload on the way: the page that queued is the page that shows the result.
    assert await page.evaluate("window.__sameDocument") is True
    await screenshot(page, "run")


async def test_the_form_of_secrets_and_nested_params_and_of_free_params(
    page: Page, url: str
) -> None:
    await page.goto("/#/tasks/login")
    form = page.get_by_test_id("queue-form")
    await expect(form.locator("abbr.required")).to_have_count(2)  # user and token
    await expect(form.locator("input[name=token]")).to_have_attribute("type", "password")
    vault = form.locator("textarea[name=vault]")  # Vault | None: JSON
    await vault.fill("{not json")
    await form.locator("input[name=user]").fill("ann")
    await form.locator("input[name=token]").fill("s3cret")
    await form.get_by_role("button", name="Queue a run").click()
    await expect(page.get_by_test_id("queue-error")).to_contain_text("vault")
    await vault.fill('{"key": "k3y", "label": "home"}')
    await form.get_by_role("button", name="Queue a run").click()
    await expect(page.locator("[data-page=run] .headline [data-state]")).to_have_text("success")
    # Secrets are shown as the gateway serves them: masked.
    shown = page.get_by_test_id("params")
    await expect(shown).to_contain_text('"token": "**********"')
    await expect(shown).to_contain_text('"label": "home"')
    await expect(shown).not_to_contain_text("s3cret")
    await expect(shown).not_to_contain_text("k3y")

    # A task without a params model takes any JSON object.
    await page.goto("/#/tasks/parent")
    free = page.get_by_test_id("queue-form").locator("textarea[name=params]")
    await expect(free).to_have_value("{}")
    await page.get_by_role("button", name="Queue a run").click()
    await expect(page.locator("[data-page=run] .headline [data-state]")).to_have_text("success")


async def test_filter_runs_by_task_and_open_one(page: Page, url: str) -> None:
    queued = await api(url, "POST", "/tasks/say_hi", json={"name": "Flo"})

    async def stored() -> bool:
        page_of = await api(url, "GET", "/tasks-history", params={"task": "say_hi"})
        return queued["id"] in [item["id"] for item in page_of["data"]]

    await until(stored, "the say_hi run in history")
    await page.goto("/#/runs")
    table = page.get_by_test_id("runs-table")
    await expect(table.locator("tbody tr").first).to_be_visible()
    await page.get_by_label("Task").select_option("say_hi")
    await page.get_by_role("button", name="Filter").click()
    await expect(page).to_have_url(re.compile(r"#/runs\?task=say_hi$"))
    row = table.locator(f"tr[data-run='{queued['id']}']")
    await expect(row).to_be_visible()
    tasks = await table.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.task)")
    assert tasks and set(tasks) == {"say_hi"}
    # A params filter keeps the one run whose params contain it.
    await page.get_by_label("Params contain (JSON)").fill('{"name": "Flo"}')
    await page.get_by_role("button", name="Filter").click()
    await expect(table.locator("tbody tr")).to_have_count(1)
    await screenshot(page, "runs")
    # Tags: only runs of tasks with the tag.
    billed = await api(url, "POST", "/tasks/tagged", json={})

    async def billed_stored() -> bool:
        found = await api(url, "GET", "/tasks-history", params={"tags": "billing"})
        return billed["id"] in [item["id"] for item in found["data"]]

    await until(billed_stored, "the tagged run in history")
    await page.goto("/#/runs?tags=billing")
    await expect(table.locator(f"tr[data-run='{billed['id']}']")).to_be_visible()
    tasks = await table.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.task)")
    assert set(tasks) == {"tagged"}
    # State, and a time range: none was queued in the future.
    await page.goto("/#/runs?task=say_hi")
    await page.get_by_label("State").select_option("success")
    await page.get_by_role("button", name="Filter").click()
    await expect(page).to_have_url(re.compile(r"state=success"))
    await expect(table.locator("tbody tr").first).to_be_visible()
    states = await table.locator("tbody [data-state]").all_inner_texts()
    assert states and set(states) == {"success"}
    await page.get_by_label("Queued from").fill("2999-01-01T00:00:00")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_text("no run matches")).to_be_visible()
    await expect(table.locator("tbody tr")).to_have_count(0)
    await page.goto(f"/#/runs?task=say_hi&params={quote(json.dumps({'name': 'Flo'}))}")
    await expect(table.locator("tbody tr")).to_have_count(1)
    await row.get_by_role("link").click()
    await expect(page.locator(f"[data-page=run][data-run='{queued['id']}']")).to_be_visible()
    await expect(page.get_by_test_id("result")).to_have_text('"Hi Flo!"')


async def test_runs_are_paged_with_the_cursor(page: Page, url: str) -> None:
    for number in range(30):
        await api(url, "POST", "/tasks/say_hi", json={"name": f"page {number}"})

    async def stored() -> bool:
        found = await api(url, "GET", "/tasks-history", params={"task": "say_hi", "limit": 100})
        return bool(sum(item["params"]["name"].startswith("page ") for item in found["data"]) == 30)

    await until(stored, "the 30 say_hi runs in history")
    await page.goto("/#/runs?task=say_hi")
    rows = page.locator("[data-testid=runs-table] tbody tr")
    await expect(rows).to_have_count(25)
    first = await rows.first.get_attribute("data-run")
    await page.get_by_role("button", name="Older →").click()
    await expect(page.locator(".pager")).to_contain_text("page 2")
    await expect(rows.first).not_to_have_attribute("data-run", first or "")
    await page.get_by_role("button", name="← Newer").click()
    await expect(page.locator(".pager")).to_contain_text("page 1")
    await expect(rows.first).to_have_attribute("data-run", first or "")


async def test_abort_a_running_sleeper(page: Page, url: str) -> None:
    queued = await api(url, "POST", "/tasks/sleeper", json={"seconds": 30})
    await page.goto(f"/#/runs/{queued['id']}")
    state = page.locator("[data-page=run] .headline [data-state]")
    # The state moves on live, through the run's events.
    await expect(state).to_have_text("running")
    await expect(page.get_by_test_id("live")).to_be_visible()
    # Meanwhile the overview counts it as running, and its worker as loaded.
    await page.goto("/")
    await expect(page.get_by_test_id("running-now")).to_contain_text("sleeper: 1")
    await expect(page.locator(".workers-load .load")).to_contain_text(re.compile(r"[1-9]\d*/"))
    await screenshot(page, "overview-busy")
    await page.goto(f"/#/runs/{queued['id']}")
    await expect(state).to_have_text("running")
    await page.get_by_label("abort reason").fill("enough")
    await page.get_by_role("button", name="Abort").click()
    await expect(state).to_have_text("aborted")
    await expect(page.get_by_role("button", name="Abort")).to_have_count(0)
    await screenshot(page, "run-aborted")
    assert (await api(url, "GET", f"/runs/{queued['id']}"))["state"] == "aborted"


async def test_a_run_follows_its_events_shows_its_error_and_runs_again(
    page: Page, url: str
) -> None:
    napping = await api(url, "POST", "/tasks/sleeper", json={"seconds": 1.5})
    await page.goto(f"/#/runs/{napping['id']}")
    state = page.locator("[data-page=run] .headline [data-state]")
    await expect(page.get_by_test_id("live")).to_be_visible()
    await expect(state).to_have_text("success")  # no reload: its events brought it
    await expect(page.get_by_test_id("result")).to_have_text('"woke up"')
    await expect(page.get_by_test_id("live")).to_have_count(0)
    # Re-run: a new run of the same task and params, shown at once.
    await page.get_by_role("button", name="Re-run").click()
    await expect(page).not_to_have_url(re.compile(napping["id"]))
    await expect(page.get_by_test_id("params")).to_contain_text('"seconds": 1.5')
    await expect(state).to_have_text("success")

    failed = await api(url, "POST", "/tasks/explode", json={"message": "kaboom"})
    await page.goto(f"/#/runs/{failed['id']}")
    error = page.get_by_test_id("run-error")
    await expect(error).to_contain_text("ValueError")
    await expect(error).to_contain_text("kaboom")
    await expect(error.locator("pre")).to_contain_text("Traceback")
    await screenshot(page, "run-failed")


async def test_parent_and_child_runs_link_each_other(page: Page, url: str) -> None:
    parent = await api(url, "POST", "/tasks/parent", json={})

    async def child_id() -> str:
        run = await api(url, "GET", f"/runs/{parent['id']}")
        return str(run["result"] or "") if run["state"] == "success" else ""

    child = await until(child_id, "the parent run to queue its child")

    async def child_stored() -> bool:
        found = await api(url, "GET", "/tasks-history", params={"task": "say_hi"})
        return child in [item["id"] for item in found["data"]]

    await until(child_stored, "the child run in history")
    await page.goto(f"/#/runs/{parent['id']}")
    link = page.locator(f"[data-page=run] a[title='{child}']")
    await expect(link).to_be_visible()
    await link.click()
    await expect(page.locator(f"[data-page=run][data-run='{child}']")).to_be_visible()
    await expect(page.locator(f"[data-page=run] a[title='{parent['id']}']").first).to_be_visible()
    await screenshot(page, "run-child")


async def test_disable_and_enable_a_task(page: Page, url: str) -> None:
    await page.goto("/#/tasks")
    toggle = page.get_by_test_id("toggle-chatty")
    await expect(toggle).to_be_checked()
    await toggle.click()
    await expect(toggle).not_to_be_checked()
    await expect(page.locator("tr[data-task=chatty] .switch")).to_contain_text("disabled")
    assert (await api(url, "GET", "/tasks/chatty"))["enabled"] is False
    await screenshot(page, "tasks")
    await toggle.click()
    await expect(toggle).to_be_checked()
    assert (await api(url, "GET", "/tasks/chatty"))["enabled"] is True


async def test_schedules_and_workers(page: Page) -> None:
    await page.goto("/#/schedules")
    tick = page.locator("[data-testid=schedules-table] tr[data-task=tick]")
    await expect(tick).to_contain_text("every")
    await expect(tick.locator("a.mono")).to_be_visible()  # its last run
    await screenshot(page, "schedules")
    await page.goto("/#/workers")
    worker = page.locator("[data-testid=workers-table] tbody tr")
    await expect(worker).to_have_count(1)
    await expect(worker).to_contain_text("say_hi")
    await screenshot(page, "workers")
    await page.goto("/#/dead-letters")
    await expect(page.locator("[data-page=dead-letters]")).to_contain_text("none")


async def test_a_phone_sized_screen(browser: Browser, url: str) -> None:
    context = await browser.new_context(
        base_url=url, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    context.set_default_timeout(WAIT_MS)
    try:
        phone = await context.new_page()
        run = await api(url, "POST", "/tasks/explode", json={})
        pages = [("/", "overview"), ("/#/runs", "runs"), ("/#/tasks", "tasks")]
        for path, name in [*pages, (f"/#/runs/{run['id']}", "run")]:
            await phone.goto(path)
            await expect(phone.locator("[data-page]")).to_be_visible()
            await expect(phone.get_by_role("link", name="Workers")).to_be_visible()
            # Nothing wider than the screen: wide tables scroll inside their own box.
            width = await phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{name} is {width}px wide on a 390px screen"
            await screenshot(phone, f"phone-{name}")
    finally:
        await context.close()


@pytest.mark.asyncio(loop_scope="function")
async def test_with_auth_a_token_signs_in_and_actions_follow_roles(tmp_path: Path) -> None:
    chromium()  # before starting anything
    key = write_signing_key(tmp_path / "signing.key")
    services = ("history", "dispatcher", "io-worker", "gateway")
    async with (
        gateway_system(tmp_path, services, auth_key_file=tmp_path / "signing.key") as (
            _,
            address,
        ),
        launched_chromium() as browser,
    ):
        context = await browser.new_context(base_url=address)
        context.set_default_timeout(WAIT_MS)
        signed = await context.new_page()
        await signed.goto("/#/tasks")
        await expect(signed.locator("[data-page=login]")).to_be_visible()
        await screenshot(signed, "login")
        await signed.get_by_label("Token").fill(mint_token(key, "ann", [Role.read], 60))
        await signed.get_by_role("button", name="Sign in").click()
        await expect(signed.get_by_test_id("who")).to_contain_text("ann")
        # A reader sees the tasks but may neither queue nor switch them.
        await expect(signed.get_by_test_id("enabled-say_hi")).to_have_text("enabled")
        await expect(signed.get_by_role("switch")).to_have_count(0)
        await expect(signed.get_by_role("link", name="Queue…")).to_have_count(0)
        await signed.goto("/#/tasks/say_hi")
        await expect(signed.locator("[data-page=task]")).to_contain_text("module")
        await expect(signed.get_by_test_id("queue-form")).to_have_count(0)
        stored = await signed.evaluate("sessionStorage.getItem('fluid.token')")
        assert stored and stored.count(".") == 2
        await signed.get_by_role("button", name="sign out").click()
        await expect(signed.locator("[data-page=login]")).to_be_visible()
