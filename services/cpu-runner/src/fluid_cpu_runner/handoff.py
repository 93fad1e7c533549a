"""The contract between the runner and the process that executes one run.

The runner hands over a ``Handoff`` (the task's module and the run) and gets back the
attempt's ``RunReport``. Both travel as one line of JSON: the proto3 JSON form of the
``fluid.scheduler.v1`` messages, built by ``wire``, so the process boundary speaks the
services' own format. Locally the lines cross a socket the process inherits; a
Kubernetes Job gets the hand-off in an environment variable and prints the report as
the last line of its log, after ``REPORT_MARKER``. Before the report, the process says
when the task function starts (``STARTED_MARKER``, a line of its own on the same
channel): the task's timeout counts from then, not from the process's start.

The child imports this module for every run: it must not pull in grpc.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from google.protobuf import json_format

from fluid.scheduler import wire
from fluid.scheduler.common import CPU_PROCESS_ENV
from fluid.scheduler.models import RunReport
from fluid.scheduler.run import Run
from fluid.scheduler.task import Task
from fluid.scheduler.v1 import dispatcher_pb2, run_pb2

if TYPE_CHECKING:
    # Annotations only: the run's process never needs the settings classes.
    from fluid.service.settings import ClientSettings

HANDOFF_ENV = "FLUID_RUN_JSON"
REPORT_MARKER = "FLUID_REPORT "
STARTED_MARKER = "FLUID_STARTED"
# The marker as the control socket carries it, ahead of the report line.
STARTED_LINE = (STARTED_MARKER + "\n").encode()
# ClientSettings' variables: a Client() the task makes reaches the runner's system.
DISPATCHER_ENV = "FLUID_DISPATCHER_ADDRESS"
HISTORY_ENV = "FLUID_HISTORY_ADDRESS"
SCHEDULER_ENV = "FLUID_SCHEDULER_ADDRESS"
# ClientSettings.token, and LeasingSettings.task_token: the run's process gets the task
# token as its FLUID_TOKEN, so task code never holds the runner's worker token when the
# operator gave it a narrower one.
TOKEN_ENV = "FLUID_TOKEN"
TASK_TOKEN_ENV = "FLUID_TASK_TOKEN"
# The W3C names OpenTelemetry's environment-variable propagation reads, so code the task
# instruments itself joins the run's trace too.
_TRACE_ENV = {"traceparent": "TRACEPARENT", "tracestate": "TRACESTATE"}


class HandoffError(ValueError):
    """A hand-off or report line that cannot be decoded."""


@dataclass(frozen=True, slots=True)
class Handoff:
    """What the process needs to execute one attempt: where the task is and the run."""

    module: str
    run: Run


def _to_json(message: run_pb2.Run | dispatcher_pb2.RunReport) -> str:
    data = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return json.dumps(data, separators=(",", ":"))


def encode_handoff(handoff: Handoff) -> str:
    data = {"module": handoff.module, "run": json.loads(_to_json(wire.run_to_pb(handoff.run)))}
    return json.dumps(data, separators=(",", ":"))


def decode_handoff(text: str) -> Handoff:
    try:
        data = json.loads(text)
        message = json_format.ParseDict(data["run"], run_pb2.Run())
        return Handoff(module=str(data["module"]), run=wire.run_from_pb(message))
    except (ValueError, KeyError, TypeError, json_format.ParseError) as exc:
        raise HandoffError(f"invalid hand-off: {exc}") from exc


def encode_report(run: Run, report: RunReport) -> str:
    return _to_json(wire.report_to_pb(run.id, run.attempt, report))


def decode_report(text: str) -> RunReport:
    try:
        message = json_format.ParseDict(json.loads(text), dispatcher_pb2.RunReport())
        return wire.report_from_pb(message, "report")
    except (ValueError, TypeError, json_format.ParseError) as exc:
        raise HandoffError(f"invalid run report: {exc}") from exc


def child_environment(
    task: Task, run: Run, clients: ClientSettings, task_token: str = ""
) -> dict[str, str]:
    """The variables the run's process gets on top of the runner's environment.

    The task's own ``env`` first, then ours, so a task cannot turn off the marker that
    makes ``is_in_cpu_process()`` true or point its child runs at another dispatcher.
    The addresses are the runner's own (``clients``), which need not be in the runner's
    environment (an embedded system's port): ``ctx.queue`` and a ``Client()`` made by the
    task reach the system the run came from. ``task_token``, when set, replaces the
    runner's token in the process.
    """
    environment = {
        **task.env,
        CPU_PROCESS_ENV: "true",
        DISPATCHER_ENV: clients.dispatcher,
        HISTORY_ENV: clients.history,
        SCHEDULER_ENV: clients.scheduler,
    }
    if task_token:
        environment[TOKEN_ENV] = task_token
    environment.update(trace_environment(run.trace_context))
    return environment


def trace_environment(trace_context: Mapping[str, str]) -> dict[str, str]:
    return {name: trace_context[key] for key, name in _TRACE_ENV.items() if key in trace_context}
