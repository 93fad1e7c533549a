"""One trace per run across every process, exported with OTLP to an in-test receiver.

dispatcher, io-worker, cpu-runner and history run as separate processes configured only
by the standard OTEL_* variables. An IO task queues a cpu-bound child: the child's
execution (in the runner and in its own process) must hang under the IO run's trace.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry import context as otel_context
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)

from fluid.scheduler import Client, TaskState
from fluid.scheduler.run import new_run_id
from fluid.scheduler.v1 import dispatcher_pb2, dispatcher_pb2_grpc
from fluid.scheduler.wire import struct_from_dict
from fluid.service.telemetry import context_from

from history_polling import stored_run
from process_helpers import free_port, serve, serving, stop_processes, system_env

TESTS = Path(__file__).parent.parent
SERVICES = ("history", "dispatcher", "io-worker", "cpu-runner")


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """The OTLP trace endpoint of a collector, keeping what it receives."""

    def __init__(self) -> None:
        self.spans: list[Span] = []

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                self.spans.extend(
                    Span(
                        service=attributes.get("service.name", ""),
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        kind=span.kind,
                    )
                    for span in scope.spans
                )
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, int]]:
    server = grpc.aio.server()
    collected = Receiver()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collected, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield collected, port
    await server.stop(None)


@pytest.mark.timeout(120)
async def test_a_cpu_child_of_an_io_run_is_one_trace_across_processes(
    receiver: tuple[Receiver, int], tmp_path: Path
) -> None:
    collected, otlp_port = receiver
    ports = {name: free_port() for name in SERVICES}
    env = system_env(
        tmp_path,
        ports,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{otlp_port}",
        OTEL_EXPORTER_OTLP_INSECURE="true",
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    processes = [serve(name, port, env, tmp_path / f"{name}.log") for name, port in ports.items()]
    try:
        for port in ports.values():
            await serving(f"127.0.0.1:{port}")
        async with Client(
            env["FLUID_DISPATCHER_ADDRESS"], history_address=env["FLUID_HISTORY_ADDRESS"]
        ) as client:
            for _ in range(200):  # both workers registered their tasks
                names = {task.name for task in await client.list_tasks()}
                if {"parent_of_cpu", "crunch"} <= names:
                    break
                await asyncio.sleep(0.05)
            parent = await client.queue_and_wait("parent_of_cpu", timeout=30)
            child = await client.wait(parent.result, timeout=60)
            assert (parent.state, child.state) == (TaskState.success, TaskState.success)
            await stored_run(client, child.id, TaskState.success)
    finally:
        # Stopping flushes each process's buffered spans to the receiver, which must go
        # on serving meanwhile: wait for the processes off the event loop.
        codes = await asyncio.to_thread(stop_processes, processes)
    assert codes == [0] * len(processes)

    execution = next(s for s in collected.spans if s.name == "run parent_of_cpu")
    trace = [s for s in collected.spans if s.trace_id == execution.trace_id]
    services = {s.service for s in trace}
    assert {
        "fluid-dispatcher",
        "fluid-io-worker",
        "fluid-cpu-runner",
        "fluid-cpu-task",
        "fluid-history",
    } <= services, services
    by_id = {s.span_id: s for s in trace}

    def parent_of(span: Span) -> Span:
        return by_id[span.parent_id]

    queue_server = "/fluid.scheduler.v1.DispatcherService/QueueRun"
    # The IO run hangs under the dispatcher's QueueRun that accepted it.
    assert parent_of(execution).name == queue_server
    assert parent_of(execution).service == "fluid-dispatcher"
    # Its ctx.queue: a client span in the worker, a server span in the dispatcher.
    child_queue = next(
        s for s in trace if s.name == queue_server and s.service == "fluid-io-worker"
    )
    assert parent_of(child_queue) == execution
    accepted = next(s for s in trace if s.parent_id == child_queue.span_id)
    assert accepted.service == "fluid-dispatcher"
    # The cpu-bound child: the runner's span, then the run's own process.
    runner = next(s for s in trace if s.service == "fluid-cpu-runner")
    assert parent_of(runner) == accepted
    process = next(s for s in trace if s.service == "fluid-cpu-task" and s.name == "run crunch")
    assert parent_of(process) == runner
    # History's writes of both runs join the trace too.
    assert any(s.service == "fluid-history" and s.name == "history.record" for s in trace)


CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_TRACEPARENT = f"00-{CALLER_TRACE}-b7ad6b7169203331-01"


@pytest.mark.timeout(120)
async def test_a_run_joins_its_callers_trace_when_no_process_records_spans(
    tmp_path: Path,
) -> None:
    # No OTEL_* variables: the services skip OpenTelemetry's interceptors, and the trace
    # context travels in the call's metadata alone.
    ports = {name: free_port() for name in ("history", "dispatcher", "io-worker")}
    env = {k: v for k, v in system_env(tmp_path, ports).items() if not k.startswith("OTEL_")}
    processes = [serve(name, port, env, tmp_path / f"{name}.log") for name, port in ports.items()]
    try:
        for port in ports.values():
            await serving(f"127.0.0.1:{port}")
        address = env["FLUID_DISPATCHER_ADDRESS"]
        async with Client(address) as client:
            for _ in range(200):
                if "say_hi" in {task.name for task in await client.list_tasks()}:
                    break
                await asyncio.sleep(0.05)
            token = otel_context.attach(context_from({"traceparent": CALLER_TRACEPARENT}))
            try:
                joined = await client.queue_and_wait("say_hi", name="traced", timeout=30)
            finally:
                otel_context.detach(token)
            alone = await client.queue_run("say_hi", {"name": "untraced"})
        # A context that does not parse is dropped: the run gets a trace of its own.
        async with grpc.aio.insecure_channel(address) as channel:
            response = await dispatcher_pb2_grpc.DispatcherServiceStub(channel).QueueRun(
                dispatcher_pb2.QueueRunRequest(
                    task="say_hi", params=struct_from_dict({"name": "bad"}), run_id=new_run_id()
                ),
                metadata=(("traceparent", "00-not-a-trace-01"),),
            )
    finally:
        codes = await asyncio.to_thread(stop_processes, processes)
    assert codes == [0] * len(processes)
    assert joined.state is TaskState.success
    assert joined.trace_context["traceparent"].split("-")[1] == CALLER_TRACE
    for run in (alone.trace_context, dict(response.run.trace_context)):
        trace_id = run["traceparent"].split("-")[1]
        assert len(trace_id) == 32
        assert trace_id != CALLER_TRACE
