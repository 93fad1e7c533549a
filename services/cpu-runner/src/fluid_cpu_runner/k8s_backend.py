"""The Kubernetes backend: every cpu-bound run as a ``batch/v1`` Job.

Owns the Job's life for one attempt: create it from the operator's pod template (read
from a Deployment on every run, so a rollout changes the Jobs too), poll its status,
follow its pod's log into the runner's log while it runs (the last line is the report),
and delete it when the run is aborted from outside. The task's timeout counts from the
log's ``STARTED_MARKER`` line; until it, ``FLUID_K8S_STARTUP_SECONDS`` bounds the Job
(whose own deadline is the two together). The run reaches the pod through a
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
from typing import TYPE_CHECKING

from kubernetes import client, config

from fluid.scheduler.models import RunError, RunReport, TaskState
from fluid.scheduler.run import Run
from fluid.scheduler.task import Task
from fluid.service.loops import cancel_and_wait

from .backend import startup_timed_out
from .handoff import (
    HANDOFF_ENV,
    REPORT_MARKER,
    STARTED_MARKER,
    Handoff,
    HandoffError,
    child_environment,
    decode_report,
    encode_handoff,
)
from .k8s_job import (
    JobPhase,
    active_deadline,
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
from .settings import IN_CLUSTER_ENV, KubernetesSettings

if TYPE_CHECKING:
    from fluid.service.settings import ClientSettings

logger = logging.getLogger("fluid.cpu_runner.k8s")

_IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_NOT_FOUND = 404
_CONFLICT = 409
_STARTUP_SETTING = "FLUID_K8S_STARTUP_SECONDS"


class HandoffSecretError(RuntimeError):
    """The Secret carrying an attempt's run could not be created: the attempt fails."""


def _kubeconfig() -> str | None:
    # Read now: the client reads KUBECONFIG once, when it is imported.
    return os.environ.get("KUBECONFIG") or None


def _in_cluster() -> bool:
    """Whether the client uses the pod's service account: in a cluster, unless KUBECONFIG
    names a configuration, which wins as it does for kubectl."""
    return IN_CLUSTER_ENV in os.environ and _kubeconfig() is None


def _api_client() -> client.ApiClient:
    """A client configured like kubectl: from KUBECONFIG, in the cluster, else ~/.kube."""
    configuration = client.Configuration()
    if _in_cluster():
        # The client's config loaders carry no annotations.
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=_kubeconfig(), client_configuration=configuration
        )
    return client.ApiClient(configuration)


def _default_namespace() -> str:
    if _in_cluster() and _IN_CLUSTER_NAMESPACE.exists():
        return _IN_CLUSTER_NAMESPACE.read_text().strip()
    try:
        _, active = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=_kubeconfig()
        )
    except (config.ConfigException, OSError):
        return "default"
    namespace = active.get("context", {}).get("namespace") if active else None
    return str(namespace or "default")


@dataclass(frozen=True, slots=True)
class _LogEnd:
    """What the pod's last lines, read once its Job ended, say."""

    report: str | None  # the report JSON after the marker
    started: bool  # the task function started (its marker is among the lines)
    lines: list[str]  # the task's own lines


def _read_log_end(log: str) -> _LogEnd:
    lines = log.splitlines()
    report = None
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith(REPORT_MARKER):
            report = lines.pop(index)[len(REPORT_MARKER) :]
            break
    started = STARTED_MARKER in lines
    if started:
        lines.remove(STARTED_MARKER)  # the first: the process prints it before the task
    return _LogEnd(report, started, lines)


@dataclass(frozen=True, slots=True)
class _JobEnd:
    """How the watch of a Job ended."""

    phase: JobPhase
    status: client.V1JobStatus | None
    # When the runner stopped the Job itself (past the timeout, or the start-up
    # allowance): why, as the run's error.
    stopped: RunError | None = None


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
        clients: ClientSettings,
        output_lines: int = 50,
        api_client: client.ApiClient | None = None,
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.output_lines = output_lines
        # Jobs wait in the cluster, not on this machine's CPUs.
        self.default_concurrency = 32
        self._api_client = api_client
        self._apis: _Apis | None = None
        self.namespace = settings.namespace

    @property
    def apis(self) -> _Apis:
        assert self._apis is not None, "started"
        return self._apis

    @property
    def deployment_name(self) -> str:
        """The template's Deployment, with its namespace once that is known."""
        name = self.settings.deployment
        return f"{self.namespace}/{name}" if self.namespace else name

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

    async def probe(self) -> str | None:
        """Start, and read the pod template once: None when Jobs can be made from it, else
        why not (the backend is stopped then)."""
        try:
            await self.start()
            await self.read_template()
        # Whatever stops it (no service account, RBAC, no such Deployment, no API), the
        # caller runs locally instead and says why.
        except Exception as error:
            await self.stop()
            if isinstance(error, client.ApiException):
                why = f"the API answered {error.status} {error.reason}"
            else:
                why = f"{type(error).__name__}: {error}"
            return f"deployment {self.deployment_name} cannot be read: {why}"
        return None

    async def read_template(self) -> client.V1PodTemplateSpec:
        """The pod template of the Deployment the Jobs copy, as it is now."""
        deployment = await asyncio.to_thread(
            self.apis.apps.read_namespaced_deployment, self.settings.deployment, self.namespace
        )
        if deployment.spec is None:
            raise RuntimeError(f"deployment {self.settings.deployment} has no spec")
        template: client.V1PodTemplateSpec = deployment.spec.template
        return template

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
            end = await self._watch(task, name, follower, following)
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
        line, started = follower.report_line, follower.started_at is not None
        if line is None:
            # The log could not be followed (or lost its end): read what the pod kept.
            log_end = await self._read_log_end(task, run, output, log_lines=not follower.streamed)
            line, started = log_end.report, started or log_end.started
        report = self._report(task, end, line, started=started)
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
        template = await self.read_template()
        environment: dict[str, str | client.V1EnvVarSource] = {
            **child_environment(task, run, self.clients),
            HANDOFF_ENV: handoff_source(name),
            # The log is the only channel back: print as written, nothing lost in a buffer.
            "PYTHONUNBUFFERED": "1",
        }
        job = build_job(
            template,
            task=task,
            run=run,
            container=self.settings.container,
            command=self.settings.command,
            environment=environment,
            ttl_seconds=self.settings.job_ttl_seconds,
            startup_seconds=self.settings.startup_seconds,
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

    async def _watch(
        self,
        task: Task,
        name: str,
        follower: PodLogFollower,
        following: asyncio.Task[None],
    ) -> _JobEnd:
        """Poll the Job until it ended, or stop it once it is overdue.

        Overdue: past the task's timeout since the log said the task started, past the
        start-up allowance without that line while the log is followed, or past the Job's
        own deadline by the allowed slack (Kubernetes did not enforce it).
        """
        loop = asyncio.get_running_loop()
        created = loop.time()
        give_up = (
            created
            + active_deadline(task, self.settings.startup_seconds)
            + self.settings.deadline_slack_seconds
        )
        while True:
            try:
                job = await asyncio.to_thread(
                    self.apis.batch.read_namespaced_job_status, name, self.namespace
                )
            except client.ApiException as error:
                if error.status == _NOT_FOUND:
                    return _JobEnd(JobPhase.failed, None)  # deleted by someone else
                raise
            phase = job_phase(job.status)
            if phase.is_done:
                return _JobEnd(phase, job.status)
            now = loop.time()
            stopped = self._overdue(task, follower, following, since=created, now=now)
            if stopped is not None:
                logger.warning("job %s: %s", name, stopped.message)
                await self._delete(name, "overdue")
                return _JobEnd(JobPhase.deadline_exceeded, job.status, stopped)
            if now >= give_up:
                await self._delete(name, "Kubernetes did not enforce the deadline")
                return _JobEnd(JobPhase.deadline_exceeded, job.status)
            await asyncio.sleep(self.settings.poll_interval_seconds)

    def _overdue(
        self,
        task: Task,
        follower: PodLogFollower,
        following: asyncio.Task[None],
        *,
        since: float,
        now: float,
    ) -> RunError | None:
        """Why the runner stops the Job, created at ``since``, at ``now``; None: it runs on."""
        if follower.started_at is not None:
            if now - follower.started_at < task.timeout_seconds:
                return None
            return RunError.timed_out(task.name, task.timeout_seconds, "its Job was deleted")
        # Only a followed log can tell that the task has not started: without one, the
        # Job's own deadline decides.
        if following.done() or now - since < self.settings.startup_seconds:
            return None
        return startup_timed_out(
            task.name, self.settings.startup_seconds, _STARTUP_SETTING, "its Job was deleted"
        )

    async def _read_log_end(
        self, task: Task, run: Run, output: RunOutput, *, log_lines: bool
    ) -> _LogEnd:
        """What the pod's last lines say; its own lines are logged when ``log_lines``."""
        try:
            pods = await asyncio.to_thread(
                self.apis.core.list_namespaced_pod,
                self.namespace,
                label_selector=label_selector(task, run),
            )
            if not pods.items or pods.items[-1].metadata is None:
                return _LogEnd(None, False, [])
            log = await asyncio.to_thread(
                self.apis.core.read_namespaced_pod_log,
                pods.items[-1].metadata.name or "",
                self.namespace,
                container=self.settings.container,
                # The report and the start marker besides the tail.
                tail_lines=self.output_lines + 2,
            )
        except client.ApiException as error:
            logger.warning("no log for run %s: %s %s", run.id, error.status, error.reason)
            return _LogEnd(None, False, [])
        log_end = _read_log_end(log)
        if log_lines:
            output.lines("log", "\n".join(log_end.lines))
        return log_end

    def _report(self, task: Task, end: _JobEnd, line: str | None, *, started: bool) -> RunReport:
        if line is not None:
            try:
                return decode_report(line)
            except HandoffError as exc:
                return RunReport(TaskState.failure, error=RunError("HandoffError", str(exc)))
        if end.stopped is not None:
            return RunReport(TaskState.failure, error=end.stopped)
        if end.phase is JobPhase.succeeded:
            # Exit status 0 means success or abort; without the log, success is the answer.
            logger.warning("job of %s succeeded but its log has no report", task.name)
            return RunReport(TaskState.success)
        if end.phase is JobPhase.deadline_exceeded:
            return RunReport(TaskState.failure, error=self._deadline_error(task, started=started))
        return RunReport(
            TaskState.failure, error=RunError("JobFailedError", failure_reason(end.status))
        )

    def _deadline_error(self, task: Task, *, started: bool) -> RunError:
        """The error of a Job stopped at its own deadline (activeDeadlineSeconds)."""
        if started:
            return RunError.timed_out(task.name, task.timeout_seconds, "its Job was stopped")
        # The log did not say (or could not be read): the deadline covers both parts.
        deadline = active_deadline(task, self.settings.startup_seconds)
        return RunError(
            "TimeoutError",
            f"task {task.name} did not end within its Job's deadline of {deadline}s "
            f"(timeout_seconds {task.timeout_seconds:g} and the start-up allowance of "
            f"{self.settings.startup_seconds:g}s, {_STARTUP_SETTING}): its Job was stopped",
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
