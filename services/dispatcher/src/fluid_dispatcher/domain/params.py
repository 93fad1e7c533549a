"""Checks a run's params against the JSON Schema its task registered.

The dispatcher has no user code, so it validates with the schema pydantic produced on
the worker; the worker validates again with the pydantic model itself before running.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from fluid.scheduler.errors import InvalidArgumentError


@lru_cache(maxsize=1024)
def _validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json))


def check_schema(schema: Mapping[str, Any], field: str) -> None:
    """Refuse a params schema that is not a valid JSON Schema."""
    try:
        Draft202012Validator.check_schema(dict(schema))
    except SchemaError as exc:
        raise InvalidArgumentError(f"{field}: invalid JSON Schema: {exc.message}") from None


def validate_params(task: str, schema: Mapping[str, Any], params: Mapping[str, Any]) -> None:
    """Raise ``InvalidArgumentError`` listing every field that fails the schema."""
    if not schema:
        return
    validator = _validator(json.dumps(schema, sort_keys=True))
    problems = []
    for error in sorted(validator.iter_errors(dict(params)), key=lambda e: list(e.path)):
        path = ".".join(str(part) for part in error.absolute_path)
        if error.validator == "required":
            # The missing field is in the message, not the path: name it like pydantic does.
            missing = error.message.split("'")[1] if "'" in error.message else ""
            path = ".".join(p for p in (path, missing) if p)
            problems.append(f"params.{path}: field required")
        else:
            location = f"params.{path}" if path else "params"
            problems.append(f"{location}: {error.message}")
    if problems:
        raise InvalidArgumentError(f"invalid params for task {task}: " + "; ".join(problems))
