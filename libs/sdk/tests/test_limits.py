"""The limits at the door: what is refused, what is cut, and the settings' own checks."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from fluid.scheduler.errors import InvalidArgumentError
from fluid.scheduler.limits import (
    Limits,
    batches,
    check_json,
    check_text,
    json_size,
    limits,
    storable_text,
    truncated,
)
from fluid.scheduler.models import RunError, RunReport, TaskState, sendable_report


def _nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"x": math.nan}, "params.x: nan is not a finite number"),
        ({"x": [1, -math.inf]}, "params.x[1]: -inf is not a finite number"),
        ({"x": "a\x00"}, "params.x: holds a NUL character"),
        ({"x\x00": 1}, "params: a key holds a NUL character"),
        ({"x": object()}, "params.x: object is not a JSON value"),
        ({1: "x"}, "params: object keys must be strings"),
        (_nested(21), "params.a.a"),
        ({"x": "y" * 100}, "params: 108 bytes of JSON, over the limit of 100 bytes"),
    ],
    ids=["nan", "inf-in-list", "nul", "nul-key", "object", "int-key", "too-deep", "too-big"],
)
def test_check_json_refuses_what_cannot_travel_or_be_stored(value: object, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        check_json(value, "params", 100)
    assert str(raised.value).startswith(message)


def test_check_json_takes_what_every_store_can_hold() -> None:
    check_json({"a": [1, 2.5, None, True, "é☃"], "b": _nested(limits().json_depth - 1)}, "p", 10**6)
    check_json("x" * 10**6, "p", None)


def test_check_text_bounds_length_and_refuses_nul() -> None:
    check_text("key", "idempotency_key", 3)
    with pytest.raises(InvalidArgumentError, match="idempotency_key: 4 characters, at most 3"):
        check_text("keys", "idempotency_key", 3)
    with pytest.raises(InvalidArgumentError, match="reason: holds a NUL"):
        check_text("a\x00", "reason", 10)


def test_truncated_keeps_within_the_limit_and_says_so_once() -> None:
    head = truncated("a" * 1000, 100)
    tail = truncated("b" * 999 + "END", 100, keep_end=True)

    assert len(head) <= 100 and head.startswith("a") and "characters cut]" in head
    assert len(tail) <= 100 and tail.endswith("END") and tail.startswith("[")
    assert truncated(head, 100) == head and truncated(tail, 100, keep_end=True) == tail
    assert truncated("short", 100) == "short"


def test_storable_text_replaces_nul_and_lone_surrogates() -> None:
    assert storable_text("a\x00b\udcffc") == "a\ufffdb\ufffdc"
    assert storable_text("plain é") == "plain é"


def test_a_result_over_the_limit_fails_the_run_keeping_its_other_fields() -> None:
    size = limits().result_bytes
    report, problem = sendable_report(
        RunReport(TaskState.success, result="x" * size, output_tail=("line",))
    )

    assert report.state is TaskState.failure and report.result is None
    assert report.error is not None and report.error.type == "ResultTooLargeError"
    assert f"result of {size + 2} bytes" in problem and "FLUID_LIMIT_RESULT_BYTES" in problem
    assert report.output_tail == ("line",)


@pytest.mark.parametrize("result", [math.nan, {"a": [math.inf]}, {"a": {1, 2}}, _nested(30)])
def test_a_result_that_is_not_json_fails_the_run(result: object) -> None:
    report, problem = sendable_report(RunReport(TaskState.success, result=result))

    assert report.state is TaskState.failure
    assert report.error is not None and report.error.type == "ResultNotSerializableError"
    assert problem.startswith("result")


def test_task_text_is_cut_and_made_storable_but_not_refused() -> None:
    limit = limits()
    report, problem = sendable_report(
        RunReport(
            TaskState.failure,
            result={"k\x00": "v\udcff"},
            error=RunError("Boom\x00", "m" * (limit.error_message_chars * 2), "t" * 10**6 + "END"),
            reason="r\x00",
            output_tail=tuple(f"line {i}\x00" for i in range(limit.output_lines + 5)),
        )
    )

    assert problem == ""
    assert report.result == {"k\ufffd": "v\ufffd"}
    assert report.error is not None and report.error.type == "Boom\ufffd"
    assert len(report.error.message) <= limit.error_message_chars
    assert len(report.error.traceback) <= limit.traceback_chars
    assert report.error.traceback.endswith("END")
    assert report.reason == "r\ufffd"
    assert len(report.output_tail) == limit.output_lines
    assert report.output_tail[-1] == f"line {limit.output_lines + 4}\ufffd"
    assert json_size(report.result) < 100


def test_limits_refuse_a_batch_that_cannot_hold_the_largest_run() -> None:
    with pytest.raises(ValidationError, match="BATCH_BYTES"):
        Limits(result_bytes=8 * 1024 * 1024)
    with pytest.raises(ValidationError, match="MESSAGE_BYTES"):
        Limits(message_bytes=5 * 1024 * 1024)
    roomy = Limits(result_bytes=8 * 1024 * 1024, batch_bytes=16 * 1024 * 1024, message_bytes=2**26)
    assert roomy.result_bytes == 8 * 1024 * 1024


def test_batches_are_cut_by_bytes_and_count_and_a_large_item_goes_alone() -> None:
    sizes = {"a": 3, "b": 3, "c": 3, "huge": 10, "d": 1}

    cut = batches(list(sizes), sizes.__getitem__, max_bytes=6)
    by_count = batches(list(sizes), sizes.__getitem__, max_bytes=100, max_count=2)

    assert cut == [["a", "b"], ["c"], ["huge"], ["d"]]
    assert by_count == [["a", "b"], ["c", "huge"], ["d"]]
    assert batches([], len, max_bytes=1) == []
