"""The one Dockerfile every service's image is built from, read as docker would.

Docker is not available where the tests run, so the image is kept correct by these checks
and by review. The service is a build argument (`--build-arg SERVICE=<service>`), and what it
changes is shell: the uv syncs and the entry point run here under /bin/sh, with stand-ins for
uv and fluid, for every service in services/.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVED_PORT = "50051"
# What docker runs a shell-form RUN with, as the Dockerfile sets no SHELL.
RUN_SHELL = ["/bin/sh", "-c"]


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


GLOBAL_ARGS, STAGES = parse_dockerfile((ROOT / "Dockerfile").read_text())
BUILDER, RUNTIME = STAGES


def in_scope(
    stage: Stage, build_args: Mapping[str, str]
) -> Iterator[tuple[Instruction, dict[str, str]]]:
    """Each instruction with the build arguments it sees: only those its stage declared."""
    scope: dict[str, str] = {}
    for item in stage.instructions:
        yield item, dict(scope)
        if item.keyword == "ARG":
            name, has_default, default = item.arguments.partition("=")
            value = build_args.get(name, default if has_default else GLOBAL_ARGS.get(name))
            if value is not None:
                scope[name] = value


@dataclass(frozen=True)
class ServicePackage:
    package: str
    service: str  # the name `fluid serve` takes: the fluid.services entry point


def workspace_services() -> list[ServicePackage]:
    found = []
    for pyproject in sorted(ROOT.glob("services/*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        for service in project.get("entry-points", {}).get("fluid.services", {}):
            found.append(ServicePackage(project["name"], service))
    return found


SERVICES = workspace_services()


@dataclass(frozen=True)
class Ran:
    pid: int
    returncode: int
    stderr: str
    called: list[str] | None  # the stand-in's process id and arguments, if it ran


def run_with_stand_in(argv: list[str], env: Mapping[str, str], program: str, bin_dir: Path) -> Ran:
    """Run argv with only a stand-in for `program` on PATH, which prints its pid and arguments."""
    bin_dir.mkdir(exist_ok=True)
    stand_in = bin_dir / program
    stand_in.write_text('#!/bin/sh\nprintf "%s\\n" "$$" "$@"\n')
    stand_in.chmod(0o755)
    with subprocess.Popen(
        argv, env={**env, "PATH": str(bin_dir)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as child:
        out, err = child.communicate(timeout=10)
    return Ran(child.pid, child.returncode, err.decode(), out.decode().splitlines() or None)


def uv_syncs(build_args: Mapping[str, str]) -> list[tuple[str, dict[str, str]]]:
    """The builder's uv sync commands, without RUN's flags, with the build args they see."""
    return [
        (re.sub(r"^(?:--\S+ )*", "", item.arguments), scope)
        for item, scope in in_scope(BUILDER, build_args)
        if item.keyword == "RUN" and re.search(r"\buv sync\b", item.arguments)
    ]


def substitute(text: str, scope: Mapping[str, str]) -> str:
    """Docker's $NAME and ${NAME} in ENV and the like; names not in scope are left as written."""
    return re.sub(
        r"\$(?:\{(\w+)\}|(\w+))", lambda match: scope.get(match[1] or match[2], match[0]), text
    )


def image_env(service: str) -> dict[str, str]:
    """The runtime's ENV with SERVICE given. The base image's variables (PATH) stay unexpanded:
    the entry point runs here with only a stand-in on PATH."""
    env: dict[str, str] = {}
    for item, scope in in_scope(RUNTIME, {"SERVICE": service}):
        if item.keyword == "ENV":
            pairs = shlex.split(substitute(item.arguments, scope))
            env.update(pair.partition("=")[::2] for pair in pairs)
    return env


def position(stage: Stage, keyword: str, pattern: str) -> int:
    """Where the first `keyword` instruction whose arguments match `pattern` is."""
    return next(
        index
        for index, item in enumerate(stage.instructions)
        if item.keyword == keyword and re.search(pattern, item.arguments)
    )


def test_the_workspace_has_services() -> None:
    assert {"dispatcher", "io-worker", "history"} <= {item.service for item in SERVICES}


def test_both_stages_run_the_same_pinned_python() -> None:
    assert [stage.name for stage in STAGES] == ["builder", "runtime"]
    # The runtime runs the builder's virtualenv, whose interpreter links point into the
    # image's Python.
    assert BUILDER.base == RUNTIME.base
    base = GLOBAL_ARGS.get(BUILDER.base.strip("${}"), BUILDER.base)
    assert re.fullmatch(r"python:3\.11[\w.-]*-slim[\w.-]*", base), base


def test_the_builder_installs_the_locked_dependencies_before_the_sources() -> None:
    # uv at a pinned version, installed before SERVICE is declared: the same layer for every
    # service. Then the dependencies from the lock alone, so only a lock change reinstalls
    # them, and the workspace's packages from the sources.
    assert position(BUILDER, "ARG", r"^UV_VERSION=\d+\.\d+\.\d+$") < (
        uv_installed := position(BUILDER, "RUN", r'pip install .*"uv==\$')
    )
    assert (
        uv_installed
        < position(BUILDER, "ARG", r"^SERVICE$")
        < position(BUILDER, "RUN", r"source=uv\.lock\b.* uv sync .*--no-install-workspace")
        < position(BUILDER, "COPY", r"^\. \.$")
        < position(BUILDER, "RUN", r"uv sync .*--no-editable")
    )


@pytest.mark.parametrize("service", SERVICES, ids=lambda item: item.service)
def test_the_builder_syncs_the_service_named_and_the_cli(
    service: ServicePackage, tmp_path: Path
) -> None:
    syncs = []
    for command, scope in uv_syncs({"SERVICE": service.service}):
        ran = run_with_stand_in([*RUN_SHELL, command], scope, "uv", tmp_path)
        assert ran.returncode == 0 and ran.called, ran.stderr
        syncs.append(ran.called[1:])
    assert syncs, "the builder never runs uv sync"
    for sync in syncs:
        assert sync[0] == "sync" and {"--frozen", "--no-dev"} <= set(sync), sync
        packages = {sync[i + 1] for i, word in enumerate(sync[:-1]) if word == "--package"}
        # The CLI provides the entry point; the service does not depend on it.
        assert packages == {service.package, "fluid-cli"}, sync
    assert "--no-editable" in syncs[-1], "the runtime must not need the sources"


def test_a_build_that_names_no_service_stops_before_uv_sync(tmp_path: Path) -> None:
    command, scope = uv_syncs({})[0]
    ran = run_with_stand_in([*RUN_SHELL, command], scope, "uv", tmp_path)
    assert ran.returncode != 0 and ran.called is None
    assert "--build-arg SERVICE=" in ran.stderr


def test_the_runtime_holds_only_the_virtualenv_and_runs_unprivileged() -> None:
    copies = RUNTIME.all("COPY")
    assert any(copy.startswith("--from=builder ") for copy in copies)
    assert not any("--from" not in copy for copy in copies), "the runtime copies no sources"
    users = RUNTIME.all("USER")
    assert users, "the runtime runs as root"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) > 0, "numeric, so runAsNonRoot can be verified"
    assert not group or (group.isdigit() and int(group) > 0)
    assert RUNTIME.all("EXPOSE") == [SERVED_PORT]


@pytest.mark.parametrize("service", SERVICES, ids=lambda item: item.service)
def test_the_entry_point_execs_fluid_serve_for_the_service(
    service: ServicePackage, tmp_path: Path
) -> None:
    entrypoints = RUNTIME.all("ENTRYPOINT")
    assert len(entrypoints) == 1
    # Arguments after the image (a Pod's args) reach `fluid serve`.
    ran = run_with_stand_in(
        [*json.loads(entrypoints[0]), "--port", "50052"],
        image_env(service.service),
        "fluid",
        tmp_path,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.called == [str(ran.pid), "serve", service.service, "--port", "50052"], (
        "fluid must be the process the container starts, so it gets the signals"
    )


def test_the_build_context_leaves_out_local_state() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", "**/.venv", "**/node_modules", "Dockerfile"} <= ignored


def test_make_images_builds_every_service_image_from_the_one_dockerfile() -> None:
    assert not list(ROOT.glob("services/*/Dockerfile")), "one Dockerfile, at the root"
    plan = subprocess.run(
        ["make", "--dry-run", "--no-print-directory", "images", "IMAGE_TAG=t", "DOCKER=docker"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.splitlines()
    assert sorted(plan) == sorted(
        f"docker build -f Dockerfile --build-arg SERVICE={item.service} -t fluid-{item.service}:t ."
        for item in SERVICES
    )
