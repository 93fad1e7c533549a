"""Masking secret params by the JSON Schema pydantic generates, and revealing them to send."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, SecretBytes, SecretStr

from fluid.scheduler import Run, TaskManager, TaskRun, TaskState, task
from fluid.scheduler.client import _queue_run_request
from fluid.scheduler.execution import execute_run
from fluid.scheduler.models import RunRequest
from fluid.scheduler.secrets import MASK, masked, revealed


class Key(BaseModel):
    key: SecretStr
    label: str = ""


class Params(BaseModel):
    user: str
    token: SecretStr
    blob: SecretBytes | None = None
    key: Key | None = None
    keys: list[Key] = []
    tokens: list[SecretStr] = []
    by_name: dict[str, SecretStr] = {}
    pair: tuple[str, SecretStr] | None = None
    count: int = 0


SCHEMA = Params.model_json_schema()


def test_pydantic_marks_secrets_write_only_passwords() -> None:
    # The contract the masking relies on, as pydantic 2 emits it.
    token = SCHEMA["properties"]["token"]
    assert token["writeOnly"] is True and token["format"] == "password"
    assert SCHEMA["$defs"]["Key"]["properties"]["key"]["writeOnly"] is True
    assert {"format": "password", "type": "string", "writeOnly": True} in SCHEMA["properties"][
        "blob"
    ]["anyOf"]


def test_every_secret_is_masked_and_nothing_else() -> None:
    params = {
        "user": "ann",
        "token": "t0",
        "blob": "b1",
        "key": {"key": "k2", "label": "main"},
        "keys": [{"key": "k3", "label": "a"}, {"key": "k4"}],
        "tokens": ["t5", "t6"],
        "by_name": {"x": "t7"},
        "pair": ["left", "t8"],
        "count": 3,
    }
    assert masked(params, SCHEMA) == {
        "user": "ann",
        "token": MASK,
        "blob": MASK,
        "key": {"key": MASK, "label": "main"},
        "keys": [{"key": MASK, "label": "a"}, {"key": MASK}],
        "tokens": [MASK, MASK],
        "by_name": {"x": MASK},
        "pair": ["left", MASK],
        "count": 3,
    }
    assert params["token"] == "t0", "the caller's params are not changed"


def test_absent_secrets_and_unknown_keys_stay_as_they_are() -> None:
    params = {"user": "ann", "token": "t", "blob": None, "key": None, "extra": {"a": 1}}
    assert masked(params, SCHEMA) == {
        "user": "ann",
        "token": MASK,
        "blob": None,
        "key": None,
        "extra": {"a": 1},
    }


def test_a_schema_without_secrets_changes_nothing() -> None:
    class Plain(BaseModel):
        name: str
        tags: list[str] = []

    params = {"name": "x", "tags": ["**"]}
    assert masked(params, Plain.model_json_schema()) == params
    assert masked(params, {}) == params


@pytest.mark.parametrize(
    "schema",
    [
        {"properties": {"a": {"$ref": "#/$defs/A"}}, "$defs": {"A": {"$ref": "#/$defs/A"}}},
        {"properties": {"a": {"$ref": "#/$defs/missing"}}, "$defs": {}},
        {"properties": {"a": {"$ref": "http://elsewhere"}}, "x": {"writeOnly": True}},
        {"properties": "not a mapping", "x": {"writeOnly": True}},
    ],
)
def test_odd_schemas_mask_nothing_and_do_not_fail(schema: dict[str, Any]) -> None:
    # A schema comes from a worker's registration: a cyclic or dangling reference is
    # no reason to fail an answer.
    assert masked({"a": "v"}, schema) == {"a": "v"}


def test_revealed_sends_the_real_values() -> None:
    value = {
        "token": SecretStr("t0"),
        "blob": SecretBytes(b"b1"),
        "keys": (Key(key=SecretStr("k2")),),
        "key": Key(key=SecretStr("k3"), label="l"),
    }
    assert revealed(value) == {
        "token": "t0",
        "blob": "b1",
        "keys": [{"key": "k2", "label": ""}],
        "key": {"key": "k3", "label": "l"},
    }


def test_revealed_params_validate_back_to_the_same_secrets() -> None:
    original = Params(user="u", token=SecretStr("t"), blob=SecretBytes(b"b"))
    again = Params.model_validate(revealed(original))
    assert again.token.get_secret_value() == "t"
    assert again.blob is not None and again.blob.get_secret_value() == b"b"


def test_queue_requests_carry_the_real_secret() -> None:
    # Child runs (ctx.queue) go through the same request builder as Client.queue_run.
    request = RunRequest("login", {"user": "u", "token": SecretStr("s3cret")})
    assert _queue_run_request(request).params["token"] == "s3cret"


class KeyAndName(BaseModel):
    key: SecretStr
    name: str


@task
async def use_key(ctx: TaskRun[KeyAndName]) -> None:
    raise AssertionError("not reached: the params are refused")


async def test_refused_params_are_reported_without_their_values() -> None:
    # pydantic quotes a missing field's input, the whole params here, secret included:
    # the run's error (shown to everyone) must not carry it.
    run = Run(id="r", task="use_key", params={"key": "s3cret"})
    report = await execute_run(use_key, run, TaskManager())
    assert report.state is TaskState.failure and report.error is not None
    assert report.error.message.endswith("name: Field required [type=missing]")
    assert "s3cret" not in report.error.message + report.error.traceback


def test_a_runs_repr_leaves_its_params_out() -> None:
    assert "s3cret" not in repr(Run(id="r", task="t", params={"token": "s3cret"}))
