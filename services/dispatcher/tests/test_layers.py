"""The domain depends on no adapter: ``store`` and ``api`` import it, never the reverse."""

from __future__ import annotations

import ast
from pathlib import Path

import fluid_dispatcher.domain

DOMAIN = Path(fluid_dispatcher.domain.__file__).parent
ADAPTERS = ("fluid_dispatcher.store", "fluid_dispatcher.api")


def _imported(path: Path) -> set[str]:
    """The absolute names of the modules ``path`` imports from."""
    package = ["fluid_dispatcher", "domain"]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            # "from .. import store" names the adapter in the alias, not the module.
            names.update(f"{module}.{alias.name}" for alias in node.names)
            names.add(module)
    return names


def test_the_domain_imports_neither_the_store_nor_the_api() -> None:
    offending = {
        path.name: sorted(name for name in _imported(path) if name.startswith(ADAPTERS))
        for path in sorted(DOMAIN.glob("*.py"))
    }
    assert {name: found for name, found in offending.items() if found} == {}
