"""Params validation against a task's JSON Schema: messages, refusals and linear time.

No test measures time: a value that a backtracking regex engine would take longer than
the age of the universe to reject must simply be answered within pytest's per-test
timeout.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field

from fluid.scheduler.errors import FailedPreconditionError, InvalidArgumentError
from fluid_dispatcher.domain import params as params_module
from fluid_dispatcher.domain.params import check_schema, validate_params

# Catastrophic for a backtracking engine: every way of splitting a run of word characters
# between the inner `\w+` and the outer `+` is tried before a trailing "!" fails it.
REDOS = "^(\\w+\\s?)+$"
LONG = 100_000


def _string_schema(pattern: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"s": {"type": "string", "pattern": pattern}},
        "required": ["s"],
    }


def _problems(schema: dict[str, Any], params: dict[str, Any]) -> str:
    with pytest.raises(InvalidArgumentError) as refused:
        validate_params("t", schema, params)
    message = str(refused.value)
    prefix = "invalid params for task t: "
    assert message.startswith(prefix)
    return message.removeprefix(prefix)


# -- ReDoS -----------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", [REDOS, "^(a+)+$", "^(a|aa)+$", "^(a|a?)+$"])
def test_a_catastrophic_pattern_is_registered_and_matched_in_linear_time(pattern: str) -> None:
    schema = _string_schema(pattern)
    check_schema(schema, "params_schema")

    validate_params("t", schema, {"s": "a" * LONG})
    problems = _problems(schema, {"s": "a" * LONG + "!"})

    assert problems.startswith("params.s: ")
    assert "does not match" in problems


def test_the_reported_redos_value_is_refused() -> None:
    schema = _string_schema(REDOS)

    assert _problems(schema, {"s": "a" * 27 + "!"}).startswith("params.s: ")


def test_pattern_properties_and_property_names_match_in_linear_time() -> None:
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "object", "propertyNames": {"pattern": REDOS}},
            "labels": {"type": "object", "patternProperties": {REDOS: {"type": "integer"}}},
        },
    }
    check_schema(schema, "params_schema")
    key = "a" * LONG

    problems = _problems(schema, {"tags": {key + "!": 1}, "labels": {key: "one"}})

    assert f"params.labels.{key}: " in problems
    assert "params.tags: " in problems


# -- refused at registration -------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    ["^(a+)\\1$", "^(?=a)\\w+$", "^(?!admin)\\w+$", "(?<=x)y", "(?<!x)y"],
    ids=["backreference", "lookahead", "negative-lookahead", "lookbehind", "negative-lookbehind"],
)
def test_a_pattern_that_needs_backtracking_is_refused_naming_it(pattern: str) -> None:
    with pytest.raises(InvalidArgumentError) as refused:
        check_schema(_string_schema(pattern), "tasks[0].params_schema")

    assert str(refused.value) == (
        f"tasks[0].params_schema: pattern {pattern!r} at properties.s.pattern needs a "
        "backtracking regex engine (backreferences or lookaround), which cannot match in "
        "linear time; write it without them"
    )


@pytest.mark.parametrize(
    ("schema", "location"),
    [
        ({"patternProperties": {"^(?=x)": {}}}, "patternProperties.^(?=x)"),
        (
            {"$ref": "#/$defs/Item", "$defs": {"Item": {"pattern": "(a)\\1"}}},
            "$defs.Item.pattern",
        ),
        (
            {"properties": {"a": {"anyOf": [{"pattern": "(?<=a)b"}]}}},
            "properties.a.anyOf.0.pattern",
        ),
    ],
)
def test_a_backtracking_pattern_is_found_wherever_it_is(
    schema: dict[str, Any], location: str
) -> None:
    with pytest.raises(InvalidArgumentError, match="needs a backtracking regex engine") as refused:
        check_schema(schema, "params_schema")

    assert f" at {location} " in str(refused.value)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "nope"},
        {"properties": 3},
        {"required": "a"},
        {"minimum": "x"},
        {"properties": {"s": {"pattern": "(unclosed"}}},
        {"$ref": "#/$defs/Missing"},
        # Offline: a remote reference is refused, never fetched by the dispatcher.
        {"$ref": "https://example.com/schema.json"},
    ],
    ids=["type", "properties", "required", "minimum", "regex", "missing-ref", "remote-ref"],
)
def test_an_invalid_schema_is_refused(schema: dict[str, Any]) -> None:
    with pytest.raises(
        InvalidArgumentError, match=r"^tasks\[2\]\.params_schema: invalid JSON Schema: "
    ):
        check_schema(schema, "tasks[2].params_schema")


def test_a_stored_schema_refused_now_fails_the_queueing_as_a_precondition() -> None:
    schema = _string_schema("^(?=a)a$")

    with pytest.raises(FailedPreconditionError, match=r"^task t: params_schema: pattern "):
        validate_params("t", schema, {"s": "a"})


# -- failure messages --------------------------------------------------------------------


class Line(BaseModel):
    sku: str = Field(pattern="^[A-Z]{3}-\\d+$")
    qty: int = Field(ge=1)


class Order(BaseModel):
    customer: str
    lines: list[Line]
    note: str | None = None


ORDER = Order.model_json_schema()


def test_a_pydantic_schema_is_registered_and_valid_params_pass() -> None:
    check_schema(ORDER, "params_schema")

    validate_params("t", ORDER, {"customer": "ann", "lines": [{"sku": "ABC-1", "qty": 2}]})


def test_a_missing_field_is_named_like_pydantic_does() -> None:
    assert _problems(ORDER, {"lines": []}) == "params.customer: field required"


def test_a_missing_nested_field_is_named_by_its_path() -> None:
    problems = _problems(ORDER, {"customer": "ann", "lines": [{"sku": "ABC-1"}]})

    assert problems == "params.lines.0.qty: field required"


def test_every_failing_field_is_listed_in_path_order() -> None:
    problems = _problems(
        ORDER,
        {"lines": [{"sku": "abc", "qty": 0}, {"sku": "ABC-1", "qty": "two"}], "note": 3},
    ).split("; ")

    assert problems == [
        "params.customer: field required",
        "params.lines.0.qty: 0 is less than the minimum of 1",
        'params.lines.0.sku: "abc" does not match "^[A-Z]{3}-\\d+$"',
        'params.lines.1.qty: "two" is not of type "integer"',
        "params.note: 3 is not valid under any of the schemas listed in the 'anyOf' keyword",
    ]


def test_a_failure_of_the_params_object_itself_is_named_params() -> None:
    schema = {"type": "object", "additionalProperties": False, "properties": {"a": {}}}

    problems = _problems(schema, {"a": 1, "extra": 2})

    assert problems.startswith("params: ")
    assert "extra" in problems


def test_an_empty_schema_accepts_any_params() -> None:
    validate_params("t", {}, {"anything": [1, "two"]})


def test_a_whole_number_from_the_wire_counts_as_an_integer() -> None:
    # protobuf's Struct carries every number as a double.
    validate_params("t", ORDER, {"customer": "ann", "lines": [{"sku": "ABC-1", "qty": 2.0}]})


def test_one_compiled_validator_serves_a_schema_whatever_its_key_order() -> None:
    params_module._validator.cache_clear()
    schema = _string_schema("^a+$")
    reordered = dict(reversed(list(schema.items())))

    check_schema(schema, "params_schema")
    validate_params("t", reordered, {"s": "aaa"})

    info = params_module._validator.cache_info()
    assert (info.misses, info.hits) == (1, 1)
