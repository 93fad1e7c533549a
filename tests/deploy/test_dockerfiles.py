"""Every service's Dockerfile, read as docker would: stages, uv sync, user, entry point.

Docker is not available where the tests run, so the images are kept correct by these
checks and by review. A service found in the workspace without a Dockerfile fails here.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVED_PORT = "50051"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [item.arguments for item in self.instructions if item.keyword == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        # Comments (and the `# syntax=` directive) may sit inside a continued instruction.
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued instruction"

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        keyword, arguments = keyword.upper(), " ".join(arguments.split())
        if keyword == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+ )?(\S+)(?: AS (\S+))?", arguments, re.I)
            assert match, f"cannot read FROM {arguments!r}"
            stages.append(Stage(name=match[2] or str(len(stages)), base=match[1]))
        elif not stages:
            assert keyword == "ARG", f"only ARG may precede the first FROM, not {keyword}"
            name, _, default = arguments.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, arguments))
    return global_args, stages


@dataclass(frozen=True)
class ServicePackage:
    directory: Path
    package: str
    service: str  # the name `fluid serve` takes: the fluid.services entry point


def workspace_services() -> list[ServicePackage]:
    found = []
    for pyproject in sorted(ROOT.glob("services/*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        for service in project.get("entry-points", {}).get("fluid.services", {}):
            found.append(ServicePackage(pyproject.parent, project["name"], service))
    return found


SERVICES = workspace_services()


def uv_sync_commands(stage: Stage) -> list[list[str]]:
    commands = []
    for run in stage.all("RUN"):
        words = shlex.split(run)
        for index in range(len(words) - 1):
            if words[index : index + 2] == ["uv", "sync"]:
                commands.append(words[index:])
    return commands


def test_the_workspace_has_services() -> None:
    assert {"dispatcher", "io-worker", "history"} <= {item.service for item in SERVICES}


@pytest.mark.parametrize("service", SERVICES, ids=lambda item: item.service)
def test_dockerfile_builds_the_service_with_uv_and_runs_it_unprivileged(
    service: ServicePackage,
) -> None:
    dockerfile = service.directory / "Dockerfile"
    assert dockerfile.is_file(), (
        f"{service.package} has no Dockerfile: copy services/dispatcher/Dockerfile and "
        f"change the package and service names"
    )
    global_args, stages = parse_dockerfile(dockerfile.read_text())
    assert [stage.name for stage in stages] == ["builder", "runtime"]
    builder, runtime = stages

    # Both stages on the same slim Python 3.11: the runtime runs the builder's virtualenv,
    # whose interpreter links point into the image's Python.
    assert builder.base == runtime.base
    base = global_args.get(builder.base.strip("${}"), builder.base)
    assert re.fullmatch(r"python:3\.11[\w.-]*-slim[\w.-]*", base), base

    assert any(re.search(r"\bpip install\b.*\buv\b", run) for run in builder.all("RUN"))
    syncs = uv_sync_commands(builder)
    assert syncs, "the builder never runs uv sync"
    for sync in syncs:
        assert {"--frozen", "--no-dev"} <= set(sync), sync
        packages = {sync[i + 1] for i, word in enumerate(sync[:-1]) if word == "--package"}
        # The CLI provides the entry point; the service does not depend on it.
        assert packages == {service.package, "fluid-cli"}, sync
    assert "--no-editable" in syncs[-1], "the runtime must not need the sources"

    copies = runtime.all("COPY")
    assert any(copy.startswith("--from=builder ") for copy in copies)
    assert not any("--from" not in copy for copy in copies), "the runtime copies no sources"
    users = runtime.all("USER")
    assert users, "the runtime runs as root"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) > 0, "numeric, so runAsNonRoot can be verified"
    assert not group or (group.isdigit() and int(group) > 0)
    assert runtime.all("EXPOSE") == [SERVED_PORT]
    entrypoints = runtime.all("ENTRYPOINT")
    assert len(entrypoints) == 1
    assert json.loads(entrypoints[0]) == ["fluid", "serve", service.service]


def test_the_build_context_leaves_out_local_state() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", "**/.venv", "**/node_modules"} <= ignored


def test_make_images_builds_every_service_image() -> None:
    plan = subprocess.run(
        ["make", "--dry-run", "--no-print-directory", "images", "IMAGE_TAG=t", "DOCKER=docker"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.splitlines()
    assert sorted(plan) == sorted(
        f"docker build -f services/{item.directory.name}/Dockerfile -t fluid-{item.service}:t ."
        for item in SERVICES
    )
