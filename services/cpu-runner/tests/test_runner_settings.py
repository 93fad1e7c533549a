"""The cpu-runner's settings: which backend they build."""

from __future__ import annotations

import logging

import pytest

from fluid.service.settings import ClientSettings
from fluid_cpu_runner.local import LocalBackend
from fluid_cpu_runner.service import start_backend
from fluid_cpu_runner.settings import CpuRunnerSettings

CLIENTS = ClientSettings(address="127.0.0.1:1")


async def test_its_output_tail_length_is_the_shared_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # FLUID_OUTPUT_TAIL_LINES is the one variable both kinds of worker read.
    monkeypatch.setenv("FLUID_OUTPUT_TAIL_LINES", "7")
    backend = await start_backend(CpuRunnerSettings(cpu_backend="local"), ["cpu_tasks"], CLIENTS)
    assert isinstance(backend, LocalBackend)
    assert backend.output_lines == 7


async def test_auto_runs_locally_outside_a_cluster(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("FLUID_CPU_BACKEND", raising=False)
    settings = CpuRunnerSettings()
    assert settings.cpu_backend == "auto"  # the default
    with caplog.at_level(logging.INFO, logger="fluid.cpu_runner"):
        backend = await start_backend(settings, ["cpu_tasks"], CLIENTS)
    assert isinstance(backend, LocalBackend)
    assert caplog.messages == [
        "cpu runs are local processes (FLUID_CPU_BACKEND=auto: not in a Kubernetes cluster, "
        "KUBERNETES_SERVICE_HOST is not set)"
    ]
