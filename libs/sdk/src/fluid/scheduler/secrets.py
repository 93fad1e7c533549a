"""Secret params: sent in clear by the SDK, masked wherever a run is shown or kept.

A params model's ``SecretStr`` and ``SecretBytes`` fields say so in the JSON Schema the
worker registers (``"writeOnly": true``, ``"format": "password"``). The dispatcher stores
and leases the real value (the worker needs it) and masks it, by that schema, in every
other answer and in the snapshots history keeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic_core import to_jsonable_python

MASK = "**********"
"""What a secret value becomes: the seed's (and pydantic's) repr of a ``SecretStr``."""

# A schema's $ref may point at another $ref: more than this many in a row is a cycle.
_MAX_REFS = 32


def revealed(value: Any) -> Any:
    """``value`` as JSON-able data with every ``SecretStr``/``SecretBytes`` (also inside
    models, mappings and sequences) replaced by its real value.

    pydantic's own dump masks secrets, so a caller passing a ``SecretStr`` would queue
    the mask. ``SecretBytes`` become UTF-8 text, as pydantic reads them back.
    """
    return to_jsonable_python(_unwrapped(value))


def _unwrapped(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, SecretBytes):
        return value.get_secret_value().decode()
    if isinstance(value, BaseModel):
        # Python mode keeps the secrets as objects (JSON mode would mask them); by alias,
        # as the model reads its input.
        return _unwrapped(value.model_dump(mode="python", by_alias=True))
    if isinstance(value, Mapping):
        return {key: _unwrapped(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_unwrapped(item) for item in value]
    return value


def masked(params: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with every value the params JSON Schema marks secret (``writeOnly`` or
    ``format: password``) replaced by ``MASK``, and nothing else changed.

    The walk follows the values through ``properties``, ``additionalProperties``,
    ``items``, ``prefixItems``, ``$ref`` into ``$defs`` and every branch of
    ``anyOf``/``oneOf``/``allOf`` (a value under a secret branch is masked: the safe side
    of a union). ``None`` stays ``None``: an absent secret reveals nothing.
    """
    if not _has_secret(schema):
        return dict(params)
    defs = schema.get("$defs")
    result = _masked(dict(params), schema, defs if isinstance(defs, Mapping) else {})
    assert isinstance(result, dict)
    return result


def _has_secret(node: Any) -> bool:
    """Whether any subschema is secret: most schemas have none, and skip the walk."""
    if isinstance(node, Mapping):
        return _is_secret(node) or any(_has_secret(item) for item in node.values())
    if isinstance(node, list):
        return any(_has_secret(item) for item in node)
    return False


def _is_secret(node: Mapping[str, Any]) -> bool:
    return node.get("writeOnly") is True or node.get("format") == "password"


def _resolved(node: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    """``node`` with its local ``$ref`` followed (pydantic's ``#/$defs/<name>``); an
    unknown or cyclic reference resolves to no constraint, which masks nothing."""
    for _ in range(_MAX_REFS):
        ref = node.get("$ref")
        if not isinstance(ref, str):
            return node
        target = defs.get(ref.removeprefix("#/$defs/")) if ref.startswith("#/$defs/") else None
        if not isinstance(target, Mapping):
            return {}
        node = target
    return {}


def _masked(value: Any, node: Any, defs: Mapping[str, Any]) -> Any:
    if not isinstance(node, Mapping) or value is None:
        return value
    node = _resolved(node, defs)
    if _is_secret(node):
        return MASK
    for key in ("anyOf", "oneOf", "allOf"):
        branches = node.get(key)
        if isinstance(branches, list):
            for branch in branches:
                value = _masked(value, branch, defs)
    if isinstance(value, dict):
        properties = node.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        others = node.get("additionalProperties")
        return {
            name: _masked(item, properties.get(name, others), defs) for name, item in value.items()
        }
    if isinstance(value, list):
        prefix = node.get("prefixItems")
        prefix = prefix if isinstance(prefix, list) else []
        items = node.get("items")
        return [
            _masked(item, prefix[index] if index < len(prefix) else items, defs)
            for index, item in enumerate(value)
        ]
    return value
