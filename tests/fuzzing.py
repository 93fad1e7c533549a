"""Mutated requests for every RPC of fluid's services, built from the proto descriptors.

Each request starts empty and gets random values in random fields: empty, huge,
NUL-holding and non-ASCII strings, ids and cursors past 64 bits, extreme integers, NaN
and infinities, out-of-range timestamps and durations, deep and odd Structs, unknown
enum numbers, long repeated fields. A seeded ``random.Random`` makes every run
repeatable.
"""

from __future__ import annotations

import math
import random
from typing import Any

from google.protobuf import struct_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

# Structs nest three protobuf levels per JSON level; past ~30 the request itself could
# not be parsed by any server (protobuf's recursion limit), which says nothing of ours.
MAX_STRUCT_DEPTH = 25
MAX_REPEATED = 40

_INT32 = [0, 1, -1, 2**31 - 1, -(2**31)]
_INT64 = [*_INT32, 2**63 - 1, -(2**63), 2**53 + 1]
_DOUBLES = [0.0, -0.0, 1e308, -1e308, 5e-324, math.nan, math.inf, -math.inf, 0.1, 1e15]


class Mutator:
    """Random values for protobuf fields; ``strings`` are the realistic ones to mix in."""

    def __init__(self, seed: int, strings: list[str]) -> None:
        self.random = random.Random(seed)
        self.strings = strings

    def string(self) -> str:
        pick = self.random.random()
        if pick < 0.35:
            return self.random.choice(self.strings)
        if pick < 0.5:
            return ""
        if pick < 0.6:
            return "x" * self.random.choice([129, 257, 5000, 70_000])
        if pick < 0.7:
            return "a\x00b"
        if pick < 0.8:
            return "é☃\U0001f600" * self.random.randint(1, 5)
        if pick < 0.9:
            top = self.random.choice([10**12, 10**20])  # Redis stream ids stop at 2**64
            return "-".join(str(self.random.randint(0, top)) for _ in range(2))
        # The last one is JSON nested past Python's recursion limit (a params_schema).
        return self.random.choice(
            ["../..", "{fluid}:run:x", "' OR 1=1 --", "%s%n", "\\u0000", "[" * 100_000]
        )

    def json_value(self, depth: int) -> Any:
        pick = self.random.random()
        if depth >= MAX_STRUCT_DEPTH or pick < 0.3:
            return self.random.choice(
                [None, True, self.random.choice(_DOUBLES), self.string(), 2**60]
            )
        if pick < 0.65:
            return {self.string()[:50]: self.json_value(depth + 1) for _ in range(3)}
        return [self.json_value(depth + 1) for _ in range(self.random.randint(0, 4))]

    def struct(self, message: struct_pb2.Struct) -> None:
        depth = self.random.choice([1, 2, 5, 19, 20, 21, MAX_STRUCT_DEPTH])
        value: Any = {"k": self.json_value(MAX_STRUCT_DEPTH)}
        for _ in range(depth - 1):
            value = {"deeper": value, "side": self.json_value(MAX_STRUCT_DEPTH - 1)}
        if self.random.random() < 0.5:
            value = {self.string()[:40]: self.json_value(18) for _ in range(3)}
        # Struct.update cannot take NaN/inf through JSON, but a Value can hold them.
        _fill_struct(message, value)

    def scalar(self, field: Any) -> Any:  # a FieldDescriptor (of either implementation)
        kind = field.type
        if kind == FieldDescriptor.TYPE_STRING:
            return self.string()
        if kind == FieldDescriptor.TYPE_BYTES:
            return self.string().encode()
        if kind == FieldDescriptor.TYPE_BOOL:
            return self.random.random() < 0.5
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return self.random.choice(_DOUBLES)
        if kind == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
            numbers = [value.number for value in field.enum_type.values]
            return self.random.choice([*numbers, 99, -1])
        if kind in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64):
            return self.random.choice(_INT64)
        if kind in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64):
            return self.random.choice([0, 1, 2**32 - 1])
        return self.random.choice(_INT32)

    def mutate(self, message: Message, depth: int = 0) -> None:
        """Set random fields of ``message`` (and of its sub-messages, a few levels deep)."""
        descriptor = message.DESCRIPTOR
        if descriptor.full_name == "google.protobuf.Struct":
            self.struct(message)  # type: ignore[arg-type]
            return
        if descriptor.full_name == "google.protobuf.Value":
            _set_value(message, self.json_value(MAX_STRUCT_DEPTH - 2))  # type: ignore[arg-type]
            return
        if descriptor.full_name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
            message.seconds = self.random.choice(_INT64)  # type: ignore[attr-defined]
            message.nanos = self.random.choice([0, 999_999_999, -1, 2**31 - 1])  # type: ignore[attr-defined]
            return
        for field in descriptor.fields:
            if self.random.random() < 0.5:
                continue
            repeated = field.is_repeated
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                target = getattr(message, field.name)
                for _ in range(self.random.randint(0, 5)):
                    target[self.string()[:64]] = self.string()
                continue
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                if depth > 3:
                    continue
                if repeated:
                    items = getattr(message, field.name)
                    for _ in range(self.random.randint(0, 4)):
                        self.mutate(items.add(), depth + 1)
                else:
                    self.mutate(getattr(message, field.name), depth + 1)
                continue
            if repeated:
                count = self.random.choice([0, 1, 3, MAX_REPEATED])
                getattr(message, field.name).extend(self.scalar(field) for _ in range(count))
            else:
                setattr(message, field.name, self.scalar(field))


def _set_value(message: struct_pb2.Value, value: Any) -> None:
    if value is None:
        message.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        message.bool_value = value
    elif isinstance(value, int | float):
        message.number_value = float(value)
    elif isinstance(value, str):
        message.string_value = value
    elif isinstance(value, dict):
        _fill_struct(message.struct_value, value)
    else:
        items = message.list_value
        for item in value:
            _set_value(items.values.add(), item)


def _fill_struct(message: struct_pb2.Struct, value: dict[str, Any]) -> None:
    for key, item in value.items():
        _set_value(message.fields[key], item)
