"""The Job a run becomes and the reading of a Job's status, without any API."""

from __future__ import annotations

import re
from typing import Any

import pytest
from kubernetes import client as k8s

from fluid.scheduler import Run, task
from fluid_cpu_runner.k8s_job import JobPhase, job_name, job_phase


def test_job_names_are_dns_labels_of_at_most_63_characters() -> None:
    @task(name="Very_Long.Task Name " * 6, cpu_bound=True)
    async def long_named(ctx: Any) -> None:
        return None

    name = job_name(long_named, Run(id="ABCDEF0123456789", task=long_named.name, attempt=12))
    assert len(name) <= 63
    assert re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", name)
    assert name.startswith("task-very-long-task-name")
    assert name.endswith("-abcdef01-12")


@pytest.mark.parametrize(
    ("status", "phase"),
    [
        (None, JobPhase.running),
        (k8s.V1JobStatus(active=1), JobPhase.running),
        (k8s.V1JobStatus(succeeded=1), JobPhase.succeeded),
        (
            k8s.V1JobStatus(conditions=[k8s.V1JobCondition(type="Complete", status="True")]),
            JobPhase.succeeded,
        ),
        (k8s.V1JobStatus(failed=1), JobPhase.failed),
        (
            k8s.V1JobStatus(
                conditions=[
                    k8s.V1JobCondition(type="Failed", status="True", reason="BackoffLimitExceeded")
                ]
            ),
            JobPhase.failed,
        ),
        (
            k8s.V1JobStatus(
                active=1,
                conditions=[
                    k8s.V1JobCondition(
                        type="FailureTarget", status="True", reason="DeadlineExceeded"
                    )
                ],
            ),
            JobPhase.deadline_exceeded,
        ),
        (
            k8s.V1JobStatus(conditions=[k8s.V1JobCondition(type="Failed", status="False")]),
            JobPhase.running,
        ),
    ],
)
def test_job_status_maps_to_a_phase(status: k8s.V1JobStatus | None, phase: JobPhase) -> None:
    assert job_phase(status) is phase
