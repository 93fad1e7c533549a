"""cpu-runner settings (``FLUID_*`` and, for the Kubernetes backend, ``FLUID_K8S_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from fluid.service.settings import FluidBaseSettings, LeasingSettings

# Set in every pod of a Kubernetes cluster: what FLUID_CPU_BACKEND=auto and the API
# client's configuration go by.
IN_CLUSTER_ENV = "KUBERNETES_SERVICE_HOST"


class CpuRunnerSettings(LeasingSettings):
    """Where cpu-bound runs execute and how they are stopped."""

    # local: a process per run on this machine; kubernetes: a batch/v1 Job per run; auto:
    # Jobs when the runner runs in a cluster and can read its pod template, else local.
    cpu_backend: Literal["auto", "local", "kubernetes"] = "auto"
    # fresh: a new interpreter per run; fork: forked from a warm process that has the task
    # modules imported (same isolation, without paying the imports per run).
    cpu_mode: Literal["fresh", "fork"] = "fresh"
    # Runs executed at once; 0 means the backend's default: one per CPU locally, 32 Jobs
    # on Kubernetes.
    cpu_concurrency: int = Field(default=0, ge=0)
    # Between SIGTERM and SIGKILL when a run times out or is aborted.
    cpu_kill_grace_seconds: float = Field(default=3.0, ge=0)
    # How long a local process may take to start the task function (interpreter start-up,
    # imports of the task's module) before the run fails; the task's timeout_seconds
    # count from that start, so start-up never eats into them.
    cpu_startup_seconds: float = Field(default=30.0, gt=0)


class KubernetesSettings(FluidBaseSettings):
    """Where the Job's pod template comes from and how Jobs are kept and watched."""

    model_config = SettingsConfigDict(env_prefix="FLUID_K8S_", extra="ignore")

    # Empty: the namespace the runner's own pod runs in (in cluster), else "default".
    namespace: str = ""
    # The Deployment whose pod template the Jobs copy: normally the runner's own, whose
    # image has the task modules installed.
    deployment: str = "fluid-cpu-runner"
    # The container of that template that runs the task (the others are dropped).
    container: str = "cpu-runner"
    job_ttl_seconds: int = Field(default=600, ge=0)
    poll_interval_seconds: float = Field(default=1.0, gt=0)
    # How the container starts the run: the image's Python and the child entry point.
    command: list[str] = Field(default_factory=lambda: ["python", "-m", "fluid_cpu_runner.child"])
    # After the Job's own deadline (activeDeadlineSeconds), how long the runner waits for
    # Kubernetes to say so before it deletes the Job itself.
    deadline_slack_seconds: float = Field(default=30.0, ge=0)
    # Once the Job ended, how long its pod's log may take to deliver its last lines.
    log_drain_seconds: float = Field(default=5.0, ge=0)
    # How long a Job may take to start the task function (scheduling, image pull,
    # interpreter start-up) before the run fails; the task's timeout_seconds count from
    # that start, and the Job's activeDeadlineSeconds is the two together.
    startup_seconds: float = Field(default=300.0, gt=0)
