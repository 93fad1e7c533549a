"""A stand-in for the few Kubernetes API calls the cpu-runner makes, on 127.0.0.1:0.

It serves one Deployment, and "runs" each Job it is given: the Job's container command
and environment become a local process, whose exit status sets the Job's status and
whose output is the pod's log (followed as it is printed, with ``follow=true``).
``activeDeadlineSeconds`` is enforced like the Job controller does (the pod is killed,
the Job fails with ``DeadlineExceeded``), and deleting a Job kills its process.
Secrets are stored as sent; like the kubelet, a pod whose ``secretKeyRef`` names a
missing Secret waits for it, and like the garbage collector, deleting a Job deletes the
Secrets it owns. Everything the runner sent is recorded for asserts.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

NAMESPACE = "fluid-test"

Query = dict[str, list[str]]
Json = dict[str, Any]
Reply = tuple[int, Json | str | Iterator[str]]


@dataclass
class FakeJob:
    body: dict[str, Any]
    process: subprocess.Popen[bytes] | None = None
    log: str = ""
    report: str = "running"  # running, succeeded, failed, deadline
    deleted_with: dict[str, str] | None = None
    lines: list[str] = field(default_factory=list)
    ended: bool = False  # the container exited: a followed log ends
    timer: threading.Timer | None = None

    @property
    def uid(self) -> str:
        uid: str = self.body["metadata"]["uid"]
        return uid

    @property
    def name(self) -> str:
        name: str = self.body["metadata"]["name"]
        return name

    @property
    def containers(self) -> list[dict[str, Any]]:
        containers: list[dict[str, Any]] = self.body["spec"]["template"]["spec"]["containers"]
        return containers

    @property
    def labels(self) -> dict[str, str]:
        labels: dict[str, str] = self.body["spec"]["template"]["metadata"]["labels"]
        return labels

    def stop(self) -> None:
        """Kill the pod: every process of the Job's group."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def status(self) -> dict[str, Any]:
        if self.report == "running":
            return {"active": 1}
        if self.report == "succeeded":
            return {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
        reason = "DeadlineExceeded" if self.report == "deadline" else "BackoffLimitExceeded"
        return {"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": reason}]}


class KubernetesStandIn:
    """The fake API server; ``jobs`` holds every Job created, by name."""

    def __init__(self, deployment: dict[str, Any]) -> None:
        self.deployment = deployment
        self.jobs: dict[str, FakeJob] = {}
        self.secrets: dict[str, Json] = {}
        self.changed = threading.Condition()
        # Secret creations answered 403, as without the RBAC to create them.
        self.refuse_secrets = 0
        # Followed-log requests answered "container is waiting to start", as the API
        # does before a pod runs.
        self.logs_not_ready_for = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "standin", "cluster": {"server": self.url}}],
                    "users": [{"name": "standin", "user": {"token": "test-token"}}],
                    "contexts": [
                        {
                            "name": "standin",
                            "context": {
                                "cluster": "standin",
                                "user": "standin",
                                "namespace": NAMESPACE,
                            },
                        }
                    ],
                    "current-context": "standin",
                }
            )
        )
        return path

    @contextmanager
    def serving(self) -> Iterator[KubernetesStandIn]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join()
            for job in self.jobs.values():
                if job.timer is not None:
                    job.timer.cancel()
                job.stop()
                if job.process is not None:
                    job.process.wait()

    def wait_for_line(self, run_id: str, text: str, timeout: float = 20) -> FakeJob:
        """Block until the Job of ``run_id`` printed ``text`` (call it in a thread)."""

        def printed() -> FakeJob | None:
            for job in self.jobs.values():
                if job.labels.get("fluid.run-id") == run_id and any(text in x for x in job.lines):
                    return job
            return None

        with self.changed:
            found = self.changed.wait_for(printed, timeout)
        assert found is not None, f"no job of run {run_id} printed {text!r}"
        return found

    # -- running a Job -----------------------------------------------------------
    def _environment(self, container: Json) -> dict[str, str] | None:
        """The container's variables, or None while a Secret they reference is missing."""
        env: dict[str, str] = {}
        for item in container.get("env", []):
            reference = item.get("valueFrom", {}).get("secretKeyRef")
            if reference is None:
                env[item["name"]] = item.get("value", "")
                continue
            data = self.secrets.get(reference["name"], {}).get("data", {})
            if reference["key"] not in data:
                return None
            env[item["name"]] = base64.b64decode(data[reference["key"]]).decode()
        return env

    def _start_waiting(self) -> None:
        """Start the pods that were waiting for a Secret, if they have it (lock held)."""
        for job in self.jobs.values():
            if job.process is None and job.report == "running" and job.deleted_with is None:
                self._start(job)

    def _start(self, job: FakeJob) -> None:
        container = job.containers[0]
        variables = self._environment(container)
        if variables is None:
            return  # CreateContainerConfigError: the kubelet tries again later
        command = list(container["command"])
        if command[0] == "python":
            command[0] = sys.executable  # the image's Python is this interpreter here
        # A pod sees its container's variables only; the "image" here is the work tree,
        # which must stay free of bytecode files.
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1", **variables}
        # Its own group: stopping a pod stops every process in the container.
        job.process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        threading.Thread(target=self._run, args=(job,), daemon=True).start()

    def _run(self, job: FakeJob) -> None:
        assert job.process is not None and job.process.stdout is not None
        for raw in job.process.stdout:
            with self.changed:
                job.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self.changed.notify_all()
        code = job.process.wait()
        job.process.stdout.close()
        if job.timer is not None:
            job.timer.cancel()
        with self.changed:
            job.log = "\n".join(job.lines) + "\n"
            job.ended = True
            if job.report == "running":
                job.report = "succeeded" if code == 0 else "failed"
            self.changed.notify_all()

    def _deadline(self, job: FakeJob) -> None:
        # The Job's deadline counts from its start, a pod still waiting to run included.
        with self.changed:
            if job.report == "running":
                job.report = "deadline"
                job.stop()
                self.changed.notify_all()

    # -- the HTTP API ----------------------------------------------------------
    def _deployment(self, name: str, query: Query, body: Json) -> Reply:
        if name != self.deployment["metadata"]["name"]:
            return _not_found()
        return 200, self.deployment

    def _create_job(self, _: str, query: Query, body: Json) -> Reply:
        name = body["metadata"]["name"]
        with self.changed:
            if name in self.jobs:
                return 409, _status("Failure", "AlreadyExists", 409)
            body["metadata"]["uid"] = str(uuid.uuid4())
            job = FakeJob(body=body)
            self.jobs[name] = job
            deadline = body["spec"].get("activeDeadlineSeconds")
            if deadline:
                job.timer = threading.Timer(deadline, self._deadline, args=(job,))
                job.timer.start()
            self._start(job)
            self.changed.notify_all()
        return 201, body

    def _read_job(self, name: str, query: Query, body: Json) -> Reply:
        job = self.jobs.get(name)
        if job is None or job.deleted_with is not None:
            return _not_found()
        with self.changed:
            return 200, {**job.body, "status": job.status()}

    def _delete_job(self, name: str, query: Query, body: Json) -> Reply:
        job = self.jobs.get(name)
        if job is None or job.deleted_with is not None:
            return _not_found()
        with self.changed:
            # The client may send the propagation policy as a query or in DeleteOptions.
            job.deleted_with = {**{k: v[0] for k, v in query.items()}, **body}
            job.stop()
            # The garbage collector: what the Job owned goes with it.
            for name, secret in list(self.secrets.items()):
                owners = secret["metadata"].get("ownerReferences", [])
                if any(owner["uid"] == job.uid for owner in owners):
                    del self.secrets[name]
            self.changed.notify_all()
        return 200, _status("Success")

    def _create_secret(self, _: str, query: Query, body: Json) -> Reply:
        name = body["metadata"]["name"]
        with self.changed:
            if self.refuse_secrets > 0:
                self.refuse_secrets -= 1
                return 403, _status("Failure", "Forbidden", 403)
            if name in self.secrets:
                return 409, _status("Failure", "AlreadyExists", 409)
            self.secrets[name] = body
            self._start_waiting()
            self.changed.notify_all()
        return 201, body

    def _delete_secret(self, name: str, query: Query, body: Json) -> Reply:
        with self.changed:
            if self.secrets.pop(name, None) is None:
                return _not_found()
            self.changed.notify_all()
        return 200, _status("Success")

    def _list_pods(self, _: str, query: Query, body: Json) -> Reply:
        selector = query.get("labelSelector", [""])[0]
        wanted = dict(pair.split("=", 1) for pair in selector.split(",") if pair)
        items = [
            {
                "metadata": {"name": f"{job.name}-pod", "labels": job.labels},
                "spec": {"containers": [{"name": c["name"]} for c in job.containers]},
            }
            for job in self.jobs.values()
            if all(job.labels.get(key) == value for key, value in wanted.items())
        ]
        return 200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}

    def _pod_log(self, pod: str, query: Query, body: Json) -> Reply:
        job = self.jobs.get(pod.removesuffix("-pod"))
        if job is None:
            return _not_found()
        with self.changed:
            waiting = job.process is None
            if query.get("follow") == ["true"] and self.logs_not_ready_for > 0:
                self.logs_not_ready_for -= 1
                waiting = True
        if waiting:
            message = f"container in pod {pod} is waiting to start: ContainerCreating"
            return 400, {**_status("Failure", "BadRequest", 400), "message": message}
        if query.get("follow") == ["true"]:
            return 200, self._followed_log(job)
        with self.changed:
            lines = job.log.splitlines()
        tail = int(query.get("tailLines", ["0"])[0]) or len(lines)
        return 200, "".join(f"{line}\n" for line in lines[-tail:])

    def _followed_log(self, job: FakeJob) -> Iterator[str]:
        """The lines as the container prints them, until it exits."""
        sent = 0
        while True:
            with self.changed:
                self.changed.wait_for(functools.partial(_news, job, sent))
                new, ended = job.lines[sent:], job.ended
            sent += len(new)
            yield "".join(f"{line}\n" for line in new)
            if ended:
                return

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        prefix = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
        routes = [
            ("GET", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/([^/]+)", self._deployment),
            ("POST", prefix + "()", self._create_job),
            ("GET", prefix + "/([^/]+?)(?:/status)?", self._read_job),
            ("DELETE", prefix + "/([^/]+)", self._delete_job),
            ("POST", f"/api/v1/namespaces/{NAMESPACE}/secrets()", self._create_secret),
            ("DELETE", f"/api/v1/namespaces/{NAMESPACE}/secrets/([^/]+)", self._delete_secret),
            ("GET", f"/api/v1/namespaces/{NAMESPACE}/pods()", self._list_pods),
            ("GET", f"/api/v1/namespaces/{NAMESPACE}/pods/([^/]+)/log", self._pod_log),
        ]

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None  # quiet: pytest shows failures, not every request

            def _serve(self) -> None:
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else {}
                for method, pattern, route in routes:
                    match = re.fullmatch(pattern, url.path)
                    if method == self.command and match:
                        code, reply = route(match[1], parse_qs(url.query), body)
                        break
                else:
                    code, reply = _not_found()
                if isinstance(reply, Iterator):
                    self._stream(reply)
                    return
                text = isinstance(reply, str)
                data = reply.encode() if isinstance(reply, str) else json.dumps(reply).encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain" if text else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, chunks: Iterator[str]) -> None:
                # No length: the body ends when the connection closes (HTTP/1.0).
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    for chunk in chunks:
                        self.wfile.write(chunk.encode())
                        self.wfile.flush()

            do_GET = do_POST = do_DELETE = _serve

        return Handler


def _news(job: FakeJob, sent: int) -> bool:
    """Whether a log follower that has ``sent`` lines has more to send, or the end."""
    return len(job.lines) > sent or job.ended


def _status(status: str, reason: str = "", code: int = 200) -> Json:
    return {"kind": "Status", "apiVersion": "v1", "status": status, "reason": reason, "code": code}


def _not_found() -> Reply:
    return 404, _status("Failure", "NotFound", 404)
