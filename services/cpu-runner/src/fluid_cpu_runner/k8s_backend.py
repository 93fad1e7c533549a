"""The Kubernetes backend: every cpu-bound run as a ``batch/v1`` Job.

Owns the Job's life for one attempt: create it from the operator's pod template (read
from a Deployment on every run, so a rollout changes the Jobs too), poll its status,
follow its pod's log into the runner's log while it runs (the last line is the report),
and delete it when the run is aborted from outside. The run reaches the pod through a
Secret the Job owns, never in the pod spec (params may hold secrets); the Secret is
deleted once the attempt ended. The official ``kubernetes`` client is synchronous: every
call runs in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config

from fluid.scheduler.models import RunError, RunReport, TaskState
from fluid.scheduler.run import Run
from fluid.scheduler.task import Task
from fluid.service.loops import cancel_and_wait

from .handoff import (
    HANDOFF_ENV,
    REPORT_MARKER,
    Handoff,
    HandoffError,
    child_environment,
    decode_report,
    encode_handoff,
)
from .k8s_job import (
    JobPhase,
    build_job,
    failure_reason,
    handoff_secret,
    handoff_source,
    job_name,
    job_phase,
    label_selector,
)
from .k8s_logs import PodLogFollower
from .output import RunOutput, with_output
from .settings import KubernetesSettings

logger = logging.getLogger("fluid.cpu_runner.k8s")

_IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_NOT_FOUND = 404
_CONFLICT = 409


class HandoffSecretError(RuntimeError):
    """The Secret carrying an attempt's run could not be created: the attempt fails."""


def _kubeconfig() -> str | None:
    # Read now: the client reads KUBECONFIG once, when it is imported.
    return os.environ.get("KUBECONFIG") or None


def _api_client() -> client.ApiClient:
    """A client configured like kubectl: in the cluster, else from the kubeconfig."""
    configuration = client.Configuration()
    if "KUBERNETES_SERVICE_HOST" in os.environ:
        # The client's config loaders carry no annotations.
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=_kubeconfig(), client_configuration=configuration
        )
    return client.ApiClient(configuration)


def _default_namespace() -> str:
    if _IN_CLUSTER_NAMESPACE.exists():
        return _IN_CLUSTER_NAMESPACE.read_text().strip()
    try:
        _, active = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=_kubeconfig()
        )
    except (config.ConfigException, OSError):
        return "default"
    namespace = active.get("context", {}).get("namespace") if active else None
    return str(namespace or "default")


def _report_line(log: str) -> tuple[str | None, list[str]]:
    """The report JSON after the marker, and the log's other lines."""
    lines = log.splitlines()
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith(REPORT_MARKER):
            return lines[index][len(REPORT_MARKER) :], lines[:index] + lines[index + 1 :]
    return None, lines


@dataclass(frozen=True, slots=True)
class _Apis:
    """The API groups the backend calls, made once: the client imports each group's module
    (thousands of lines) on first use, which would stall the event loop for a second."""

    batch: client.BatchV1Api
    apps: client.AppsV1Api
    core: client.CoreV1Api

    @classmethod
    def of(cls, api: client.ApiClient) -> _Apis:
        return cls(client.BatchV1Api(api), client.AppsV1Api(api), client.CoreV1Api(api))


class KubernetesBackend:
    """Executes each attempt as a Job and relays how it ended."""

    name = "kubernetes"

    def __init__(
        self,
        settings: KubernetesSettings,
        *,
        dispatcher_address: str,
        output_lines: int = 50,
        api_client: client.ApiClient | None = None,
    ) -> None:
        self.settings = settings
        self.dispatcher_address = dispatcher_address
        self.output_lines = output_lines
        self._api_client = api_client
        self._apis: _Apis | None = None
        self.namespace = settings.namespace

    @property
    def apis(self) -> _Apis:
        assert self._apis is not None, "started"
        return self._apis

    async def start(self) -> None:
        if self._api_client is None:
            self._api_client = await asyncio.to_thread(_api_client)
        self._apis = await asyncio.to_thread(_Apis.of, self._api_client)
        if not self.namespace:
            self.namespace = await asyncio.to_thread(_default_namespace)
        logger.info(
            "runs become Jobs in namespace %s from deployment %s, container %s",
            self.namespace,
            self.settings.deployment,
            self.settings.container,
        )

    async def stop(self) -> None:
        if self._api_client is not None:
            await asyncio.to_thread(self._api_client.close)

    async def execute(self, task: Task, run: Run) -> RunReport:
        """Run the attempt as a Job; cancelling this deletes the Job."""
        name = job_name(task, run)
        output = RunOutput(run.id, task.name, self.output_lines)
        follower = PodLogFollower(
            self.apis.core,
            namespace=self.namespace,
            container=self.settings.container,
            selector=label_selector(task, run),
            output=output,
            poll_interval=self.settings.poll_interval_seconds,
        )
        following: asyncio.Task[None] | None = None
        handed_off = ended = False
        try:
            await self._create(task, run, name)
            handed_off = True
            following = asyncio.create_task(follower.follow(), name=f"log-{name}")
            phase, status = await self._watch(task, name)
            ended = True
        except asyncio.CancelledError:
            # Shielded: the Job must go even if the runner is cancelled again meanwhile.
            await asyncio.shield(self._delete(name, "the run was stopped"))
            raise
        finally:
            if following is not None:
                await self._stop_following(follower, following, drain=ended)
            if handed_off:
                # The pod read its hand-off when its container started: the run's params
                # need not wait for the Job's TTL (nor, once it is deleted, the collector).
                await asyncio.shield(self._delete_secret(name))
        if not phase.is_done:
            await self._delete(name, "Kubernetes did not enforce the deadline")
            phase = JobPhase.deadline_exceeded
        line = follower.report_line
        if line is None:
            # The log could not be followed (or lost its end): read what the pod kept.
            line = await self._read_report(task, run, output, log_lines=not follower.streamed)
        report = self._report(task, phase, status, line)
        return with_output(report, output.tail)

    async def _stop_following(
        self, follower: PodLogFollower, following: asyncio.Task[None], *, drain: bool
    ) -> None:
        if drain:
            # The log ends with the container, about when the Job says it ended: a moment
            # for its last lines before the connection is closed.
            await asyncio.wait([following], timeout=self.settings.log_drain_seconds)
        follower.close()
        await cancel_and_wait([following])
        if not following.cancelled() and following.exception() is not None:
            logger.warning(
                "following the log of %s failed: %r", follower.selector, following.exception()
            )

    async def _create(self, task: Task, run: Run, name: str) -> None:
        deployment = await asyncio.to_thread(
            self.apis.apps.read_namespaced_deployment, self.settings.deployment, self.namespace
        )
        if deployment.spec is None:
            raise RuntimeError(f"deployment {self.settings.deployment} has no spec")
        environment: dict[str, str | client.V1EnvVarSource] = {
            **child_environment(task, run, self.dispatcher_address),
            HANDOFF_ENV: handoff_source(name),
            # The log is the only channel back: print as written, nothing lost in a buffer.
            "PYTHONUNBUFFERED": "1",
        }
        job = build_job(
            deployment.spec.template,
            task=task,
            run=run,
            container=self.settings.container,
            command=self.settings.command,
            environment=environment,
            ttl_seconds=self.settings.job_ttl_seconds,
        )
        try:
            created = await asyncio.to_thread(
                self.apis.batch.create_namespaced_job, self.namespace, job
            )
        except client.ApiException as error:
            if error.status != _CONFLICT:
                raise
            # The same attempt handed back by a stopping runner and leased again: its Job
            # exists already (deleting is asynchronous); take over watching it. Its Secret
            # may not exist (that runner may have stopped in between): the uid it needs is
            # in the status read, which returns the whole Job.
            logger.info("job %s exists already: watching it", name)
            created = await asyncio.to_thread(
                self.apis.batch.read_namespaced_job_status, name, self.namespace
            )
        # The Job first, then its Secret: the Secret needs the Job's uid to be owned by it,
        # and a runner stopping in between leaves a pod waiting for its Secret until the
        # Job's deadline, never an unowned Secret with the run's params.
        handoff = encode_handoff(Handoff(module=task.module, run=run))
        await self._create_secret(name, handoff_secret(created, handoff))
        logger.info("run %s of %s is job %s/%s", run.id, task.name, self.namespace, name)

    async def _create_secret(self, name: str, secret: client.V1Secret) -> None:
        try:
            await asyncio.to_thread(self.apis.core.create_namespaced_secret, self.namespace, secret)
        except client.ApiException as error:
            if error.status == _CONFLICT:
                return  # made for this same attempt by the runner that created the Job
            # Without its Secret the pod would never start: no Job is left waiting for it.
            await self._delete(name, "its Secret could not be created")
            raise HandoffSecretError(
                f"could not create Secret {self.namespace}/{name} with the run for its Job: "
                f"{error.status} {error.reason}"
            ) from error

    async def _watch(self, task: Task, name: str) -> tuple[JobPhase, client.V1JobStatus | None]:
        """Poll the Job until it ended or outlived its deadline by the allowed slack."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + task.timeout_seconds + self.settings.deadline_slack_seconds
        while True:
            try:
                job = await asyncio.to_thread(
                    self.apis.batch.read_namespaced_job_status, name, self.namespace
                )
            except client.ApiException as error:
                if error.status == _NOT_FOUND:
                    return JobPhase.failed, None  # deleted by someone else
                raise
            phase = job_phase(job.status)
            if phase.is_done or loop.time() >= give_up:
                return phase, job.status
            await asyncio.sleep(self.settings.poll_interval_seconds)

    async def _read_report(
        self, task: Task, run: Run, output: RunOutput, *, log_lines: bool
    ) -> str | None:
        """The report line from the pod's last lines, which are logged when ``log_lines``."""
        try:
            pods = await asyncio.to_thread(
                self.apis.core.list_namespaced_pod,
                self.namespace,
                label_selector=label_selector(task, run),
            )
            if not pods.items or pods.items[-1].metadata is None:
                return None
            log = await asyncio.to_thread(
                self.apis.core.read_namespaced_pod_log,
                pods.items[-1].metadata.name or "",
                self.namespace,
                container=self.settings.container,
                tail_lines=self.output_lines + 1,
            )
        except client.ApiException as error:
            logger.warning("no log for run %s: %s %s", run.id, error.status, error.reason)
            return None
        line, other = _report_line(log)
        if log_lines:
            output.lines("log", "\n".join(other))
        return line

    def _report(
        self,
        task: Task,
        phase: JobPhase,
        status: client.V1JobStatus | None,
        line: str | None,
    ) -> RunReport:
        if line is not None:
            try:
                return decode_report(line)
            except HandoffError as exc:
                return RunReport(TaskState.failure, error=RunError("HandoffError", str(exc)))
        if phase is JobPhase.succeeded:
            # Exit status 0 means success or abort; without the log, success is the answer.
            logger.warning("job of %s succeeded but its log has no report", task.name)
            return RunReport(TaskState.success)
        if phase is JobPhase.deadline_exceeded:
            error = RunError.timed_out(task.name, task.timeout_seconds, "its Job was stopped")
            return RunReport(TaskState.failure, error=error)
        return RunReport(
            TaskState.failure, error=RunError("JobFailedError", failure_reason(status))
        )

    async def _delete(self, name: str, why: str) -> None:
        try:
            # Background: the API returns at once and the garbage collector removes the
            # pods, which kills the task's process.
            await asyncio.to_thread(
                self.apis.batch.delete_namespaced_job,
                name,
                self.namespace,
                propagation_policy="Background",
            )
            logger.info("deleted job %s: %s", name, why)
        except client.ApiException as error:
            if error.status != _NOT_FOUND:
                logger.error("could not delete job %s (%s): %s", name, why, error.reason)

    async def _delete_secret(self, name: str) -> None:
        try:
            await asyncio.to_thread(self.apis.core.delete_namespaced_secret, name, self.namespace)
        except client.ApiException as error:
            # Owned by the Job: the garbage collector deletes it with the Job at the latest.
            if error.status != _NOT_FOUND:
                logger.warning("could not delete secret %s: %s", name, error.reason)
