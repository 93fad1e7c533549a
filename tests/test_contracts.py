"""The protos are lint-clean (real buf) and the committed stubs match them."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
PROTOS = ROOT / "protos"
STUBS = ROOT / "libs/sdk/src/fluid/scheduler/v1"
BUF = ROOT / "tools/node_modules/.bin/buf"


def test_buf_lint_is_clean() -> None:
    assert BUF.exists(), "buf is installed by `make test` (npm ci in tools/)"
    result = subprocess.run(
        [str(BUF), "lint"], cwd=PROTOS, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_committed_stubs_match_the_protos(tmp_path: Path) -> None:
    protos = sorted(str(path.relative_to(PROTOS)) for path in PROTOS.rglob("*.proto"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"--python_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            f"--mypy_out={tmp_path}",
            f"--mypy_grpc_out={tmp_path}",
            *protos,
        ],
        check=True,
        cwd=ROOT,
        # protoc finds the mypy plugins next to this interpreter.
        env={
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        },
    )
    generated = tmp_path / "fluid/scheduler/v1"
    names = sorted(path.name for path in generated.iterdir())
    committed = sorted(
        path.name for path in STUBS.iterdir() if path.is_file() and path.name != "__init__.py"
    )
    assert names == committed
    _, mismatch, errors = filecmp.cmpfiles(generated, STUBS, names, shallow=False)
    assert not mismatch and not errors, f"stale stubs: {mismatch + errors}; run `make proto`"
