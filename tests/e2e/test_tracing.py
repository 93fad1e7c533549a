"""One trace follows a run from the queueing call through execution to history."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fluid.scheduler import Client, TaskState
from fluid.service.host import Host

from history_polling import stored_run


def _exporter() -> InMemorySpanExporter:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


async def test_one_trace_covers_queue_execute_and_history(system: Host, client: Client) -> None:
    exporter = _exporter()
    with trace.get_tracer("test").start_as_current_span("caller") as caller:
        run = await client.queue_and_wait("say_hi", name="traced", timeout=10)
    assert run.state is TaskState.success
    await stored_run(client, run.id, TaskState.success)

    trace_id = caller.get_span_context().trace_id
    spans = [span for span in exporter.get_finished_spans() if span.context.trace_id == trace_id]
    names = {span.name for span in spans}
    assert "/fluid.scheduler.v1.DispatcherService/QueueRun" in names
    assert "run say_hi" in names
    assert "history.record" in names
    execution = next(span for span in spans if span.name == "run say_hi")
    assert execution.attributes is not None
    assert execution.attributes["fluid.run_id"] == run.id
    assert execution.attributes["fluid.state"] == "success"
    # The execution hangs under the dispatcher's QueueRun span, not as a new root.
    queue_server = next(
        span
        for span in spans
        if span.name == "/fluid.scheduler.v1.DispatcherService/QueueRun"
        and span.kind is trace.SpanKind.SERVER
    )
    assert execution.parent is not None
    assert execution.parent.span_id == queue_server.context.span_id
