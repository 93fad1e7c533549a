"""The cpu-runner's settings: which backend they build."""

from __future__ import annotations

import pytest

from fluid_cpu_runner.local import LocalBackend
from fluid_cpu_runner.service import create_backend
from fluid_cpu_runner.settings import CpuRunnerSettings


def test_its_output_tail_length_is_the_shared_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    # FLUID_OUTPUT_TAIL_LINES is the one variable both kinds of worker read.
    monkeypatch.setenv("FLUID_OUTPUT_TAIL_LINES", "7")
    backend = create_backend(CpuRunnerSettings(), ["cpu_tasks"], "127.0.0.1:1")
    assert isinstance(backend, LocalBackend)
    assert backend.output_lines == 7
