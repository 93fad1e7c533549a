"""HistoryService messages to domain values and back.

A bad query field is ``InvalidArgumentError``; a bad snapshot is refused alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from fluid.scheduler import wire
from fluid.scheduler.errors import InvalidArgumentError
from fluid.scheduler.run import Run
from fluid.scheduler.v1 import history_pb2, run_pb2
from fluid.scheduler.wire import WireError
from fluid_history.domain.cursor import Cursor
from fluid_history.domain.query import RunQuery
from fluid_history.domain.snapshots import RecordResult, RefusedSnapshot


def snapshots_from_pb(
    messages: Sequence[run_pb2.Run],
) -> tuple[list[Run], list[RefusedSnapshot]]:
    """The snapshots that convert, and a refusal naming the field of each other one."""
    runs: list[Run] = []
    refused: list[RefusedSnapshot] = []
    for message in messages:
        try:
            runs.append(wire.run_from_pb(message))
        except WireError as error:
            refused.append(RefusedSnapshot(message.id, message.version, str(error)))
    return runs, refused


def record_response_to_pb(result: RecordResult) -> history_pb2.RecordRunsResponse:
    return history_pb2.RecordRunsResponse(
        applied=len(result.applied),
        refused=[
            history_pb2.RefusedRun(
                run_id=refusal.run_id, version=refusal.version, reason=refusal.reason
            )
            for refusal in result.refused
        ],
    )


def query_from_pb(request: history_pb2.ListRunsRequest) -> RunQuery:
    try:
        states = frozenset(
            wire.state_from_pb(value, f"states[{index}]")
            for index, value in enumerate(request.states)
            # The proto documents UNSPECIFIED as "any state": it narrows nothing.
            if value != run_pb2.TASK_STATE_UNSPECIFIED
        )
        params = (
            wire.dict_from_struct(request.params_contain, "params_contain")
            if request.HasField("params_contain")
            else {}
        )
        queued_after = (
            wire.datetime_from(request.queued_after, "queued_after")
            if request.HasField("queued_after")
            else None
        )
        queued_before = (
            wire.datetime_from(request.queued_before, "queued_before")
            if request.HasField("queued_before")
            else None
        )
    except WireError as error:
        raise InvalidArgumentError(str(error)) from None
    return RunQuery(
        task=request.task,
        states=states,
        queued_after=queued_after,
        queued_before=queued_before,
        params_contain=params,
        tags=frozenset(request.tags),
        limit=request.limit,
        after=Cursor.decode(request.cursor) if request.cursor else None,
    )
