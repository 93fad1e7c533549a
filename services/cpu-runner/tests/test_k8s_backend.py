"""The Kubernetes backend with the real ``kubernetes`` client against a local API stand-in.

The stand-in runs each Job's container command as a local process, so these tests check
both the Job the runner asks for and that it actually runs the task, and how every way
a Job ends maps to the run's state.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from fluid.scheduler import Client, Run, TaskState
from fluid.scheduler.loader import load_tasks
from fluid.service.host import Host
from fluid.service.settings import ClientSettings, ServerSettings
from fluid_cpu_runner.k8s_backend import KubernetesBackend
from fluid_cpu_runner.local import LocalBackend
from fluid_cpu_runner.service import start_backend
from fluid_cpu_runner.settings import CpuRunnerSettings, KubernetesSettings

from k8s_standin import NAMESPACE, KubernetesStandIn
from runner_output import OutputLines

pytestmark = pytest.mark.asyncio(loop_scope="module")

TESTS = Path(__file__).parent

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "fluid-cpu-runner", "namespace": NAMESPACE},
    "spec": {
        "selector": {"matchLabels": {"app.kubernetes.io/name": "fluid-cpu-runner"}},
        "template": {
            "metadata": {
                "labels": {"app.kubernetes.io/name": "fluid-cpu-runner"},
                "annotations": {"prometheus.io/scrape": "true"},
            },
            "spec": {
                "serviceAccountName": "fluid-cpu-runner",
                "containers": [
                    {
                        "name": "cpu-runner",
                        "image": "fluid:dev",
                        "command": ["fluid", "serve", "cpu-runner"],
                        "env": [
                            {"name": "FLUID_TASK_MODULES", "value": "cpu_tasks"},
                            {"name": "PYTHONPATH", "value": str(TESTS)},
                            {"name": "FLUID_TOKEN", "value": "the-runners-worker-token"},
                            {"name": "FLUID_TASK_TOKEN", "value": "the-task-token"},
                        ],
                        "ports": [{"containerPort": 50051, "name": "grpc"}],
                        "readinessProbe": {"grpc": {"port": 50051}},
                        "livenessProbe": {"grpc": {"port": 50051}},
                    },
                    {"name": "proxy", "image": "envoy:latest"},
                ],
            },
        },
    },
}


@pytest.fixture(scope="module")
def standin() -> Iterator[KubernetesStandIn]:
    with KubernetesStandIn(DEPLOYMENT).serving() as server:
        yield server


@pytest.fixture(scope="module")
def k8s_environment(
    standin: KubernetesStandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    folder = tmp_path_factory.mktemp("k8s")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        patch.setenv("KUBECONFIG", str(standin.kubeconfig(folder / "kubeconfig")))
        patch.setenv("FLUID_DATABASE_URL", f"sqlite+aiosqlite:///{folder / 'h.db'}")
        patch.setenv("FLUID_LEASE_TTL_SECONDS", "3")
        patch.setenv("FLUID_LEASE_WAIT_SECONDS", "0.2")
        patch.setenv("FLUID_CPU_BACKEND", "kubernetes")
        patch.setenv("FLUID_K8S_POLL_INTERVAL_SECONDS", "0.05")
        patch.setenv("FLUID_K8S_JOB_TTL_SECONDS", "120")
        yield


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def k8s_client(k8s_environment: None) -> AsyncIterator[Client]:
    host = Host(
        ["history", "dispatcher", "cpu-runner"],
        settings=ServerSettings(port=0, shutdown_grace_seconds=2),
        task_modules=["cpu_tasks"],
    )
    await host.start()
    try:
        async with Client(host.address) as connected:
            yield connected
    finally:
        await host.stop()


def _jobs_of(standin: KubernetesStandIn, run: Run) -> list[dict[str, Any]]:
    return [
        job.body
        for job in standin.jobs.values()
        if job.body["metadata"]["annotations"]["fluid.run-id"] == run.id
    ]


async def test_a_run_becomes_a_job_built_from_the_runners_deployment(
    k8s_client: Client, standin: KubernetesStandIn
) -> None:
    run = await k8s_client.queue_and_wait("whoami", word="pod", numbers=[2, 3], timeout=30)
    assert run.state is TaskState.success, run.error
    assert run.result["word"] == "pod" and run.result["total"] == 5
    assert run.result["in_cpu_process"] is True
    assert run.result["flavour"] == "spicy"

    [job] = _jobs_of(standin, run)
    name = job["metadata"]["name"]
    assert re.fullmatch(rf"task-whoami-{run.id[:8]}-0", name)
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    # The task's timeout_seconds and the start-up allowance (FLUID_K8S_STARTUP_SECONDS).
    assert spec["activeDeadlineSeconds"] == 60 + 300
    assert spec["ttlSecondsAfterFinished"] == 120
    pod = spec["template"]
    labels = {
        "fluid.run-id": run.id,
        "fluid.attempt": "0",
        "fluid.task": "whoami",
        "app.kubernetes.io/component": "fluid-task-job",
    }
    assert job["metadata"]["labels"] == labels
    # The runner's own labels would put the task's pod behind the runner's Service.
    assert pod["metadata"]["labels"] == labels
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["spec"]["restartPolicy"] == "Never"
    # Task code never gets the runner's right to create and delete Jobs.
    assert "serviceAccountName" not in pod["spec"]
    assert pod["spec"]["automountServiceAccountToken"] is False
    [container] = pod["spec"]["containers"]
    assert container["name"] == "cpu-runner"
    assert container["image"] == "fluid:dev"
    assert container["command"] == ["python", "-m", "fluid_cpu_runner.child"]
    assert "args" not in container
    assert not {"readinessProbe", "livenessProbe", "startupProbe"} & set(container)
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["FLUID_TASK_MODULES"] == "cpu_tasks"  # the template's own variables stay
    # but not the runner's token (with it, task code could lease any run): the task
    # token is the pod's token.
    assert env["FLUID_TOKEN"] == "the-task-token"
    assert "FLUID_TASK_TOKEN" not in env
    assert env["TASK_MANAGER_SPAWN"] == "true"
    assert env["CPU_TASK_FLAVOUR"] == "spicy"
    # The run (its params may hold secrets) is in the Job's Secret, not in the pod spec.
    assert env["FLUID_RUN_JSON"] is None
    assert run.id not in json.dumps(pod["spec"])
    [handoff] = [item for item in container["env"] if item["name"] == "FLUID_RUN_JSON"]
    assert handoff["valueFrom"] == {"secretKeyRef": {"name": name, "key": "handoff"}}
    # Its Secret went when the attempt ended, while the Job stays for its TTL.
    assert name not in standin.secrets
    assert standin.jobs[name].deleted_with is None
    assert env["TRACEPARENT"].split("-")[1] == run.trace_context["traceparent"].split("-")[1]


async def test_the_run_reaches_the_pod_in_a_secret_the_job_owns(
    k8s_client: Client, standin: KubernetesStandIn
) -> None:
    queued = await k8s_client.queue("linger")
    job = await asyncio.to_thread(standin.wait_for_line, queued.id, "ready")
    secret = standin.secrets[job.name]
    assert secret["type"] == "Opaque" and secret["immutable"] is True
    assert secret["metadata"]["ownerReferences"] == [
        {"apiVersion": "batch/v1", "kind": "Job", "name": job.name, "uid": job.uid}
    ]
    assert secret["metadata"]["labels"] == job.labels
    handoff = json.loads(base64.b64decode(secret["data"]["handoff"]))
    assert handoff["module"] == "cpu_tasks"
    assert handoff["run"]["id"] == queued.id
    await k8s_client.abort(queued.id, "seen the secret")
    run = await k8s_client.wait(queued.id, timeout=30)
    assert run.state is TaskState.aborted
    assert job.deleted_with is not None
    assert job.name not in standin.secrets


async def test_a_secret_the_api_refuses_fails_the_attempt_and_leaves_no_job(
    k8s_client: Client, standin: KubernetesStandIn
) -> None:
    standin.refuse_secrets = 1
    run = await k8s_client.queue_and_wait("whoami", word="denied", numbers=[1], timeout=30)
    assert standin.refuse_secrets == 0
    assert run.state is TaskState.failure
    assert run.error is not None and run.error.type == "HandoffSecretError"
    assert "could not create Secret fluid-test/task-whoami-" in run.error.message
    assert "403 Forbidden" in run.error.message
    [job] = [item for item in standin.jobs.values() if item.labels["fluid.run-id"] == run.id]
    assert job.deleted_with is not None and job.process is None
    assert job.name not in standin.secrets


async def test_a_failed_job_ends_failure_with_the_tasks_error(k8s_client: Client) -> None:
    run = await k8s_client.queue_and_wait("explode", message="in a pod", timeout=30)
    assert run.state is TaskState.failure
    assert run.error is not None
    assert (run.error.type, run.error.message) == ("ValueError", "in a pod")


async def test_a_job_past_its_deadline_fails_with_a_timeout(k8s_client: Client) -> None:
    run = await k8s_client.queue_and_wait("hang", timeout=30)
    assert run.state is TaskState.failure
    assert run.error is not None and run.error.type == "TimeoutError"


async def test_ctx_abort_in_a_job_ends_aborted(k8s_client: Client) -> None:
    run = await k8s_client.queue_and_wait("give_up", timeout=30)
    assert run.state is TaskState.aborted
    assert run.reason == "nothing to do"


async def test_an_external_abort_deletes_the_job(
    k8s_client: Client, standin: KubernetesStandIn
) -> None:
    queued = await k8s_client.queue("linger")
    job = await asyncio.to_thread(standin.wait_for_line, queued.id, "ready")
    await k8s_client.abort(queued.id, "no longer needed")
    run = await k8s_client.wait(queued.id, timeout=30)
    assert run.state is TaskState.aborted
    assert run.reason == "no longer needed"
    assert job.deleted_with is not None
    assert job.deleted_with.get("propagationPolicy") == "Background"


async def test_every_attempt_of_a_retried_run_is_a_job_of_its_own(
    k8s_client: Client, standin: KubernetesStandIn, tmp_path: Path
) -> None:
    run = await k8s_client.queue_and_wait("flaky", path=str(tmp_path / "ledger"), timeout=30)
    assert run.state is TaskState.failure
    assert run.attempt == 2
    names = sorted(job["metadata"]["name"] for job in _jobs_of(standin, run))
    assert [name[-2:] for name in names] == ["-0", "-1", "-2"]


async def test_the_jobs_log_reaches_the_runners_log_once(
    k8s_client: Client, output: OutputLines
) -> None:
    run = await k8s_client.queue_and_wait("chatty", count=2, timeout=30)
    assert run.state is TaskState.success
    lines = output.of(run.id)
    assert [line for line in lines if "line " in line] == [
        f"[run {run.id} log] line 0",
        f"[run {run.id} log] line 1",
    ]
    assert not any("FLUID_REPORT" in line for line in lines)
    assert run.output_tail[:2] == ("line 0", "line 1")


async def test_the_log_streams_while_the_job_runs(
    k8s_client: Client, standin: KubernetesStandIn, output: OutputLines
) -> None:
    # The API refuses to follow a log until the pod's container runs: the runner retries.
    standin.logs_not_ready_for = 2
    queued = await k8s_client.queue("linger")
    line = await output.wait_for(queued.id, "ready")
    assert (await k8s_client.get_run(queued.id)).state is TaskState.running, line
    assert standin.logs_not_ready_for == 0
    await k8s_client.abort(queued.id, "seen enough")
    run = await k8s_client.wait(queued.id, timeout=30)
    assert run.state is TaskState.aborted


async def test_the_timeout_counts_from_the_started_line_of_the_log(
    k8s_client: Client, standin: KubernetesStandIn, output: OutputLines
) -> None:
    # 1.5s of work within a 2s timeout: the pod's start is the start-up allowance's.
    run = await k8s_client.queue_and_wait("work_for", seconds=1.5, timeout=30)
    assert run.state is TaskState.success, run.error
    [job] = _jobs_of(standin, run)
    assert job["spec"]["activeDeadlineSeconds"] == 2 + 300
    # The marker is the runner's, not the task's output.
    assert "FLUID_STARTED" in standin.jobs[job["metadata"]["name"]].lines
    assert not any("FLUID_STARTED" in line for line in output.of(run.id))
    assert "FLUID_STARTED" not in run.output_tail


async def test_busy_work_past_its_timeout_deletes_the_job(
    k8s_client: Client, standin: KubernetesStandIn
) -> None:
    run = await k8s_client.queue_and_wait("work_for", seconds=30, timeout=30)
    assert run.state is TaskState.failure
    assert run.error is not None and run.error.type == "TimeoutError"
    assert "timed out after 2s" in run.error.message
    [job] = _jobs_of(standin, run)
    # The runner stopped it: the Job's own deadline is the start-up allowance later.
    assert standin.jobs[job["metadata"]["name"]].deleted_with is not None


async def test_a_job_that_never_starts_its_task_fails_past_the_allowance(
    k8s_environment: None, standin: KubernetesStandIn
) -> None:
    # The pod waits in the import of its task module, longer than this allowance.
    task = load_tasks(["slow_start_tasks"])["never_starts"]
    backend = KubernetesBackend(
        KubernetesSettings(startup_seconds=2, poll_interval_seconds=0.05),
        clients=ClientSettings(address="127.0.0.1:1"),
    )
    await backend.start()
    try:
        report = await backend.execute(task, Run(id="slowstart", task=task.name))
    finally:
        await backend.stop()
    assert report.state is TaskState.failure
    assert report.error is not None
    assert report.error.type == "StartupTimeoutError"
    assert report.error.message == (
        "task never_starts did not start within the start-up allowance of 2s "
        "(FLUID_K8S_STARTUP_SECONDS): its Job was deleted"
    )
    [job] = [item for item in standin.jobs.values() if item.labels["fluid.run-id"] == "slowstart"]
    assert job.body["spec"]["activeDeadlineSeconds"] == 5 + 2
    assert job.deleted_with is not None


# -- FLUID_CPU_BACKEND=auto ------------------------------------------------------------
async def _auto_backend() -> KubernetesBackend | LocalBackend:
    backend = await start_backend(
        CpuRunnerSettings(), ["cpu_tasks"], ClientSettings(address="127.0.0.1:1")
    )
    await backend.stop()
    assert isinstance(backend, KubernetesBackend | LocalBackend)
    return backend


async def test_auto_makes_jobs_in_a_cluster_that_lets_it_read_its_template(
    k8s_environment: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # In a cluster; KUBECONFIG, which wins over the pod's service account, is the stand-in.
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.delenv("FLUID_CPU_BACKEND")
    with caplog.at_level(logging.INFO, logger="fluid.cpu_runner"):
        backend = await _auto_backend()
    assert isinstance(backend, KubernetesBackend)
    assert backend.namespace == NAMESPACE
    assert "cpu runs are Kubernetes Jobs (FLUID_CPU_BACKEND=auto: in a cluster, and " in (
        caplog.text
    )


async def test_auto_falls_back_to_local_when_the_template_cannot_be_read(
    k8s_environment: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.delenv("FLUID_CPU_BACKEND")
    monkeypatch.setenv("FLUID_K8S_DEPLOYMENT", "someone-else")
    with caplog.at_level(logging.INFO, logger="fluid.cpu_runner"):
        backend = await _auto_backend()
    assert isinstance(backend, LocalBackend)
    [warning] = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert warning.getMessage() == (
        "cpu runs are local processes (FLUID_CPU_BACKEND=auto): in a cluster, but deployment "
        f"{NAMESPACE}/someone-else cannot be read: the API answered 404 Not Found"
    )


async def test_auto_falls_back_to_local_without_a_service_account(
    k8s_environment: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # In a cluster with no kubeconfig: the pod's service account, which this pod lacks.
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.delenv("FLUID_CPU_BACKEND")
    with caplog.at_level(logging.INFO, logger="fluid.cpu_runner"):
        backend = await _auto_backend()
    assert isinstance(backend, LocalBackend)
    [warning] = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert "cpu runs are local processes (FLUID_CPU_BACKEND=auto): in a cluster, but " in (
        warning.getMessage()
    )
    assert "ConfigException" in warning.getMessage()
