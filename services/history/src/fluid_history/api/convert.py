"""HistoryService messages to domain values; bad fields become ``InvalidArgumentError``."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf import json_format

from fluid.scheduler import wire
from fluid.scheduler.errors import InvalidArgumentError
from fluid.scheduler.run import Run
from fluid.scheduler.v1 import history_pb2, run_pb2
from fluid.scheduler.wire import WireError
from fluid_history.domain.cursor import Cursor
from fluid_history.domain.query import RunQuery


def snapshots_from_pb(messages: Sequence[run_pb2.Run]) -> list[Run]:
    snapshots = []
    for index, message in enumerate(messages):
        try:
            snapshots.append(wire.run_from_pb(message))
        except WireError as error:
            raise _invalid(f"runs[{index}].{error.field}", error) from None
        except (ValueError, json_format.Error) as error:
            # A Struct can carry what JSON cannot (NaN, infinities): refuse, naming the run.
            raise InvalidArgumentError(f"runs[{index}]: {error}") from None
    return snapshots


def query_from_pb(request: history_pb2.ListRunsRequest) -> RunQuery:
    try:
        states = frozenset(
            wire.state_from_pb(value, f"states[{index}]")
            for index, value in enumerate(request.states)
            # The proto documents UNSPECIFIED as "any state": it narrows nothing.
            if value != run_pb2.TASK_STATE_UNSPECIFIED
        )
        params = (
            wire.dict_from_struct(request.params_contain)
            if request.HasField("params_contain")
            else {}
        )
    except WireError as error:
        raise _invalid(error.field, error) from None
    except (ValueError, json_format.Error) as error:
        raise InvalidArgumentError(f"params_contain: {error}") from None
    return RunQuery(
        task=request.task,
        states=states,
        queued_after=(
            wire.datetime_from(request.queued_after) if request.HasField("queued_after") else None
        ),
        queued_before=(
            wire.datetime_from(request.queued_before) if request.HasField("queued_before") else None
        ),
        params_contain=params,
        tags=frozenset(request.tags),
        limit=request.limit,
        after=Cursor.decode(request.cursor) if request.cursor else None,
    )


def _invalid(field: str, error: WireError) -> InvalidArgumentError:
    reason = str(error).removeprefix(f"{error.field}: ")
    return InvalidArgumentError(f"{field}: {reason}")
