"""The package's layers, as DESIGN.md draws them: data flows one way, each
layer imports only those below it, and the pure core imports neither Celery
nor storage. Checked on the source, so a wrong import fails here."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "celery_triggers"

#: Module (or subpackage) -> layer. A module may import its own layer and below.
LAYERS = {
    "errors": 1,
    "_json": 1,
    "_retry": 1,
    "config": 1,
    "state": 2,
    "engine": 2,
    "needs": 2,
    "analysis": 2,
    "storage": 3,
    "dispatch": 4,
    "signals": 4,
    "logs": 4,
    "validation": 4,
    "inspection": 4,
    "host": 4,
    "manager": 4,
    "context": 4,
    "runners": 5,
    "integration": 6,
    "cli": 7,
    "testing": 7,
    "compat": 7,
    "__init__": 7,
}
PURE = {"errors", "_json", "_retry", "needs", "config", "state", "engine", "analysis"}


def _unit(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported unit or top-level package, only under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            guarded |= {id(n) for n in ast.walk(node)}
    depth = len(path.relative_to(PACKAGE).parts)  # 1 for a top-level module
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append((node.module.split(".")[0] if node.module else "", id(node) in guarded))
                continue
            up = node.level - (depth - 1)
            if up > 1 or (up == 1 and node.module is None):
                continue  # within a subpackage
            if up <= 0:  # relative import inside the same subpackage
                continue
            names = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
            found += [(name, id(node) in guarded) for name in names]
        elif isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], id(node) in guarded) for alias in node.names]
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_layers_are_one_way(path: Path) -> None:
    unit = _unit(path)
    layer = LAYERS[unit]
    for name, type_only in _imports(path):
        if name in LAYERS and not type_only:
            assert LAYERS[name] <= layer, f"{unit} (layer {layer}) imports {name} (layer {LAYERS[name]})"
        if unit in PURE and not type_only:
            assert name not in ("celery", "kombu", "storage", "redis", "django", "sqlite3"), f"{unit} imports {name}"


def test_importing_the_package_has_no_side_effects(tmp_path: Path) -> None:
    """No app, no connection, no file: importing is free."""
    code = (
        "import sys, celery_triggers, celery_triggers.testing, celery_triggers.cli;"
        "from celery import _state;"
        "assert _state.default_app is None, 'a default app was created';"
        "lazy = ('celery_triggers.storage.redis', 'celery_triggers.storage.django_cache', 'rich', 'pydantic');"
        "assert not [m for m in lazy if m in sys.modules], [m for m in lazy if m in sys.modules]"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert list(tmp_path.iterdir()) == []
