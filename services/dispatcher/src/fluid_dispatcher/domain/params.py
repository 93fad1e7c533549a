"""Checks a run's params against the JSON Schema its task registered.

The dispatcher has no user code, so it validates with the schema pydantic produced on
the worker; the worker validates again with the pydantic model itself before running.

Validation runs on the dispatcher's event loop, so it must take time linear in the
params: ``jsonschema_rs`` with its standard regex engine matches every ``pattern`` in
linear time, and a schema whose pattern needs backtracking (backreferences,
lookaround) is refused at registration instead of being matched by a backtracking
engine that a crafted value could keep busy for seconds or more (ReDoS).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jsonschema_rs

from fluid.scheduler.errors import FailedPreconditionError, InvalidArgumentError

# Only the linear-time engine, never the default fancy-regex one: fancy-regex
# backtracks for backreferences and lookaround, bounded by a step count rather
# than by time, and what it cannot finish in that count it reports as an error,
# not as a params failure.
_LINEAR_REGEX = jsonschema_rs.RegexOptions()


class _SchemaRefused(Exception):
    """Why a params schema cannot be used, phrased to follow its field's name."""


@lru_cache(maxsize=1024)
def _validator(schema_json: str) -> jsonschema_rs.Validator:
    try:
        # Draft 2020-12 whatever "$schema" says, as pydantic writes; offline, so a
        # remote "$ref" is refused rather than fetched by the dispatcher.
        return jsonschema_rs.Draft202012Validator(
            schema_json, pattern_options=_LINEAR_REGEX, offline=True
        )
    except jsonschema_rs.ValidationError as exc:
        raise _SchemaRefused(_refusal(exc)) from None


def _refusal(exc: jsonschema_rs.ValidationError) -> str:
    kind = exc.kind
    pattern = exc.instance
    if (
        isinstance(kind, jsonschema_rs.ValidationErrorKind.Format)
        and kind.format == "regex"
        and isinstance(pattern, str)
        and _needs_backtracking(pattern)
    ):
        location = ".".join(str(part) for part in exc.schema_path)
        return (
            f"pattern {pattern!r} at {location} needs a backtracking regex engine "
            "(backreferences or lookaround), which cannot match in linear time; "
            "write it without them"
        )
    return f"invalid JSON Schema: {exc.message}"


def _needs_backtracking(pattern: str) -> bool:
    """Whether only the backtracking engine compiles ``pattern`` (compiling matches nothing)."""
    try:
        jsonschema_rs.Draft202012Validator({"pattern": pattern}, offline=True)
    except jsonschema_rs.ValidationError:
        return False
    return True


def _schema_json(schema: Mapping[str, Any]) -> str:
    # Sorted keys: one cache entry per schema, however its keys were ordered.
    return json.dumps(schema, sort_keys=True)


def check_schema(schema: Mapping[str, Any], field: str) -> None:
    """Refuse a params schema that is not a valid JSON Schema or that has a pattern
    the linear-time regex engine cannot match."""
    try:
        _validator(_schema_json(schema))
    except _SchemaRefused as exc:
        raise InvalidArgumentError(f"{field}: {exc}") from None


def validate_params(task: str, schema: Mapping[str, Any], params: Mapping[str, Any]) -> None:
    """Raise ``InvalidArgumentError`` listing every field that fails the schema."""
    if not schema:
        return
    try:
        validator = _validator(_schema_json(schema))
    except _SchemaRefused as exc:
        # Registered before its schema was checked this way: the worker has to
        # register a schema this dispatcher can use before the task can be queued.
        raise FailedPreconditionError(f"task {task}: params_schema: {exc}") from None
    problems: list[tuple[list[str | int], str]] = []
    for error in validator.iter_errors(dict(params)):
        path = list(error.instance_path)
        if isinstance(error.kind, jsonschema_rs.ValidationErrorKind.Required):
            # The missing field is not in the path: name it there, like pydantic does.
            path.append(error.kind.property)
            problems.append((path, "field required"))
        else:
            problems.append((path, error.message))
    if problems:
        # In path order, so one set of failures always reads the same.
        problems.sort(key=lambda problem: problem[0])
        raise InvalidArgumentError(
            f"invalid params for task {task}: "
            + "; ".join(
                ".".join(str(part) for part in ["params", *path]) + f": {message}"
                for path, message in problems
            )
        )
