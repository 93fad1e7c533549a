"""The Kubernetes Job one attempt of a cpu-bound run becomes, and how to read its status.

Pure functions, no API calls. The Job copies the pod template the operator provides (the
runner's own Deployment, whose image has the task modules) and changes what makes it a
one-shot task process: only the named container, the child entry point as its command,
no probes, ``restartPolicy: Never``, ``backoffLimit: 0`` (retries are the dispatcher's,
under the task's policy), ``activeDeadlineSeconds`` from the task's timeout and the
start-up allowance, and a TTL.
Its labels replace the template's so that no Service selecting the runner's pods routes
traffic to a task's pod.

The run (params included, which may hold secrets) is not in the pod spec: it travels in a
Secret of the same name that the Job owns (``handoff_secret``), which the container reads
through ``secretKeyRef`` and the garbage collector deletes with the Job.
"""

from __future__ import annotations

import base64
import enum
import math
import re
from collections.abc import Mapping

from kubernetes import client

from fluid.scheduler.run import Run
from fluid.scheduler.task import Task

from .handoff import TASK_TOKEN_ENV, TOKEN_ENV

RUN_LABEL = "fluid.run-id"
ATTEMPT_LABEL = "fluid.attempt"
TASK_LABEL = "fluid.task"
COMPONENT_LABEL = "app.kubernetes.io/component"
COMPONENT = "fluid-task-job"
# Label values are limited (63 characters, a small alphabet); the annotation keeps the
# exact run id whatever the caller chose.
RUN_ANNOTATION = "fluid.run-id"
MAX_NAME = 63
# The key of the hand-off in the attempt's Secret.
HANDOFF_KEY = "handoff"


class TemplateError(ValueError):
    """The operator's pod template cannot make a task Job (no such container, ...)."""


def _dns_label(text: str, limit: int) -> str:
    """``text`` as a DNS-1123 label: lower-case alphanumerics and '-', alphanumeric ends."""
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower())[:limit].strip("-")
    return label or "x"


def label_value(text: str) -> str:
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:MAX_NAME]
    return value.strip("-_.") or "x"


def job_name(task: Task, run: Run) -> str:
    """``task-<name>-<id prefix>-<attempt>``: unique per attempt, at most 63 characters.

    The attempt is part of the name because a retried run keeps its id, and the previous
    attempt's Job may still exist until its TTL runs out.
    """
    suffix = f"-{_dns_label(run.id, 8)}-{run.attempt}"
    return f"task-{_dns_label(task.name, MAX_NAME - len('task-') - len(suffix))}{suffix}"


def job_labels(task: Task, run: Run) -> dict[str, str]:
    return {
        RUN_LABEL: label_value(run.id),
        ATTEMPT_LABEL: str(run.attempt),
        TASK_LABEL: label_value(task.name),
        COMPONENT_LABEL: COMPONENT,
    }


def label_selector(task: Task, run: Run) -> str:
    """Selects the pods of this attempt's Job (and no other attempt's)."""
    labels = job_labels(task, run)
    return ",".join(f"{key}={labels[key]}" for key in (RUN_LABEL, ATTEMPT_LABEL))


def active_deadline(task: Task, startup_seconds: float) -> int:
    """The Job's ``activeDeadlineSeconds``: it counts from the Job's start, so it covers
    the pod's start-up (``startup_seconds`` at most) and then the task's timeout."""
    return max(1, math.ceil(task.timeout_seconds + startup_seconds))


def build_job(
    template: client.V1PodTemplateSpec,
    *,
    task: Task,
    run: Run,
    container: str,
    command: list[str],
    environment: Mapping[str, str | client.V1EnvVarSource],
    ttl_seconds: int,
    startup_seconds: float = 0.0,
) -> client.V1Job:
    """The Job that executes ``run``'s attempt, from a copy of the pod template.

    ``environment`` values are literal, or a source (a Secret's key) the kubelet resolves.
    ``startup_seconds`` is the start-up allowance the deadline adds to the task's timeout.
    """
    pod = template.model_copy(deep=True)
    if pod.spec is None:
        raise TemplateError("the pod template has no spec")
    chosen = next((item for item in pod.spec.containers if item.name == container), None)
    if chosen is None:
        names = ", ".join(item.name for item in pod.spec.containers)
        raise TemplateError(f"the pod template has no container {container!r} (has: {names})")
    # A task process is not a server: probes would kill it for not answering them.
    chosen.liveness_probe = None
    chosen.readiness_probe = None
    chosen.startup_probe = None
    chosen.command = list(command)
    chosen.args = None
    chosen.env = [
        *_task_environment(chosen.env or [], dropped=set(environment)),
        *(_env_var(name, value) for name, value in environment.items()),
    ]
    # Sidecars of the runner (proxies, log shippers) would keep the Job from completing.
    pod.spec.containers = [chosen]
    pod.spec.restart_policy = "Never"
    # Task code must not act with the runner's rights (create and delete Jobs): the pod
    # runs under the namespace's default account with no API token mounted.
    pod.spec.service_account_name = None
    pod.spec.automount_service_account_token = False
    labels = job_labels(task, run)
    annotations = dict(pod.metadata.annotations or {}) if pod.metadata else {}
    annotations[RUN_ANNOTATION] = run.id
    pod.metadata = client.V1ObjectMeta(labels=labels, annotations=annotations)
    return client.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=client.V1ObjectMeta(
            name=job_name(task, run), labels=labels, annotations={RUN_ANNOTATION: run.id}
        ),
        spec=client.V1JobSpec(
            template=pod,
            backoff_limit=0,
            active_deadline_seconds=active_deadline(task, startup_seconds),
            ttl_seconds_after_finished=ttl_seconds,
        ),
    )


def _task_environment(
    template: list[client.V1EnvVar], *, dropped: set[str]
) -> list[client.V1EnvVar]:
    """The template's variables a task's pod keeps, with the task token as its token.

    The runner's ``FLUID_TOKEN`` is a worker token, which may lease any run and read its
    params: the pod never gets it. ``FLUID_TASK_TOKEN`` (a value or a Secret's key) becomes
    the pod's ``FLUID_TOKEN``; without one, task code in a Job calls fluid with no token.
    """
    kept: list[client.V1EnvVar] = []
    for item in template:
        if item.name == TASK_TOKEN_ENV:
            kept.append(
                client.V1EnvVar(name=TOKEN_ENV, value=item.value, value_from=item.value_from)
            )
        elif item.name not in {*dropped, TOKEN_ENV}:
            kept.append(item)
    return kept


def _env_var(name: str, value: str | client.V1EnvVarSource) -> client.V1EnvVar:
    if isinstance(value, str):
        return client.V1EnvVar(name=name, value=value)
    return client.V1EnvVar(name=name, value_from=value)


def handoff_source(name: str) -> client.V1EnvVarSource:
    """Where the container of Job ``name`` reads its hand-off: its Secret's key."""
    # Not optional: without its Secret the pod waits (CreateContainerConfigError) rather
    # than start a run it cannot read.
    return client.V1EnvVarSource(
        secret_key_ref=client.V1SecretKeySelector(name=name, key=HANDOFF_KEY)
    )


def handoff_secret(job: client.V1Job, handoff: str) -> client.V1Secret:
    """The Secret holding ``handoff`` for ``job``, as created: owned by the Job, so the
    garbage collector deletes it with the Job whatever becomes of the runner."""
    metadata = job.metadata
    assert metadata is not None and metadata.name and metadata.uid, "a created Job"
    owner = client.V1OwnerReference(
        api_version="batch/v1", kind="Job", name=metadata.name, uid=metadata.uid
    )
    return client.V1Secret(
        api_version="v1",
        kind="Secret",
        metadata=client.V1ObjectMeta(
            name=metadata.name,
            labels=dict(metadata.labels or {}),
            annotations=dict(metadata.annotations or {}),
            owner_references=[owner],
        ),
        type="Opaque",
        # Written once for one attempt: nobody has a reason to change it.
        immutable=True,
        data={HANDOFF_KEY: base64.b64encode(handoff.encode()).decode()},
    )


class JobPhase(enum.Enum):
    """Where a task Job is, as far as the run is concerned."""

    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    deadline_exceeded = "deadline_exceeded"

    @property
    def is_done(self) -> bool:
        return self is not JobPhase.running


def _condition(status: client.V1JobStatus, kind: str) -> client.V1JobCondition | None:
    return next(
        (item for item in status.conditions or [] if item.type == kind and item.status == "True"),
        None,
    )


def job_phase(status: client.V1JobStatus | None) -> JobPhase:
    """The phase a Job's status says (``FailureTarget`` counts: the Job is failing)."""
    if status is None:
        return JobPhase.running
    failed = _condition(status, "Failed") or _condition(status, "FailureTarget")
    if failed is not None:
        if failed.reason == "DeadlineExceeded":
            return JobPhase.deadline_exceeded
        return JobPhase.failed
    if _condition(status, "Complete") is not None or (status.succeeded or 0) > 0:
        return JobPhase.succeeded
    # backoffLimit 0: one failed pod is the Job's end, whether or not a condition says so.
    if (status.failed or 0) > 0:
        return JobPhase.failed
    return JobPhase.running


def failure_reason(status: client.V1JobStatus | None) -> str:
    """What the Job's conditions say about its end, for the run's error."""
    if status is None:
        return "the Job disappeared: it was deleted outside fluid"
    failed = _condition(status, "Failed") or _condition(status, "FailureTarget")
    if failed is None:
        return "the Job's pod failed"
    return f"the Job failed: {failed.reason or 'no reason'} {failed.message or ''}".strip()
