"""The io-worker's composition: which tasks it takes and what it refuses."""

from __future__ import annotations

import pytest

from fluid.service.host import ServiceContext
from fluid.service.settings import ClientSettings
from fluid_io_worker.service import IoWorkerService


def context(*modules: str) -> ServiceContext:
    return ServiceContext(clients=ClientSettings(address="127.0.0.1:1"), task_modules=modules)


def test_it_needs_task_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLUID_TASK_MODULES", raising=False)
    with pytest.raises(ValueError, match="needs task modules"):
        IoWorkerService(context())


def test_it_loads_the_modules_tasks() -> None:
    service = IoWorkerService(context("fluid_cli.examples"))
    assert {"say_hi", "fan_out", "heartbeat", "digest"} <= set(service.tasks)
    # It serves only health and reflection: no servicer of its own.
    assert service.attach(server=None) == []  # type: ignore[arg-type]


def test_its_output_tail_length_is_the_shared_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    # FLUID_OUTPUT_TAIL_LINES is the one variable both kinds of worker read.
    monkeypatch.setenv("FLUID_OUTPUT_TAIL_LINES", "7")
    assert IoWorkerService(context("fluid_cli.examples"))._logs.lines == 7
