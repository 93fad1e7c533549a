"""The trace context a new run carries, and which RPCs are traced."""

from __future__ import annotations

import re

from fluid.service.grpc_tracing import _is_traced
from fluid.service.telemetry import context_from, new_trace_context

TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$")


def test_a_run_queued_outside_any_trace_gets_a_trace_of_its_own() -> None:
    first, second = new_trace_context(), new_trace_context()
    assert TRACEPARENT.match(first["traceparent"])
    assert first["traceparent"].split("-")[1] != second["traceparent"].split("-")[1]
    # The minted context is one OpenTelemetry reads back.
    assert context_from(first)


def test_only_single_run_rpcs_of_fluid_are_traced() -> None:
    # Batches and streams of many runs, health checks and reflection get no span.
    assert _is_traced("/fluid.scheduler.v1.DispatcherService/QueueRun")
    assert _is_traced("/fluid.scheduler.v1.HistoryService/ListRuns")
    assert not _is_traced("/fluid.scheduler.v1.DispatcherService/LeaseRuns")
    assert not _is_traced("/fluid.scheduler.v1.DispatcherService/WatchRun")
    assert not _is_traced("/fluid.scheduler.v1.HistoryService/RecordRuns")
    assert not _is_traced("/grpc.health.v1.Health/Check")
