"""The gateway's tests use the repository's shared test helpers and tasks (tests/):
``embedded.gateway_system``, ``process_helpers``, ``sample_tasks`` (the worker imports it
by name)."""

from __future__ import annotations

import sys
from pathlib import Path

SHARED = Path(__file__).parents[3] / "tests"
if str(SHARED) not in sys.path:
    sys.path.insert(0, str(SHARED))
