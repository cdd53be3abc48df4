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
    "_plugins": 1,
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
    "overrides": 4,
    "manager": 4,
    "context": 4,
    "settings": 4,
    "runners": 5,
    "integration": 6,
    "cli": 7,
    "testing": 7,
    "compat": 7,
    "contrib": 7,
    "__init__": 7,
}
PURE = {"errors", "_json", "_retry", "_plugins", "needs", "config", "state", "engine", "analysis"}


def _unit(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _imports(path: Path, source: str | None = None) -> list[tuple[str, bool]]:
    """(imported unit or top-level package, only under TYPE_CHECKING), for
    the module at ``path`` (its text, or ``source`` instead)."""
    tree = ast.parse(path.read_text() if source is None else source)
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
            up = node.level - (depth - 1)  # 1: from the package root (``from . import X`` at the top)
            if up != 1:  # inside the same subpackage
                continue
            names = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
            found += [(name, id(node) in guarded) for name in names]
        elif isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], id(node) in guarded) for alias in node.names]
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


def _violations(path: Path, source: str | None = None) -> list[str]:
    unit = _unit(path)
    layer = LAYERS[unit]
    found = []
    for name, type_only in _imports(path, source):
        if name in LAYERS and not type_only and LAYERS[name] > layer:
            found.append(f"{unit} (layer {layer}) imports {name} (layer {LAYERS[name]})")
        if unit in PURE and not type_only and name in ("celery", "kombu", "storage", "redis", "django", "sqlite3"):
            found.append(f"{unit} imports {name}")
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_layers_are_one_way(path: Path) -> None:
    assert _violations(path) == []


@pytest.mark.parametrize(
    ("module", "line", "expected"),
    [
        ("config.py", "from . import signals", "config (layer 1) imports signals (layer 4)"),
        ("config.py", "from .integration import extension", "config (layer 1) imports integration (layer 6)"),
        ("engine.py", "import celery", "engine imports celery"),
        ("storage/base.py", "from .. import manager", "storage (layer 3) imports manager (layer 4)"),
        ("storage/base.py", "from ..runners import eager", "storage (layer 3) imports runners (layer 5)"),
    ],
)
def test_a_wrong_import_fails_the_layer_test(module: str, line: str, expected: str) -> None:
    """Mutations: each import added to a real module is caught."""
    path = PACKAGE / module
    assert expected in _violations(path, path.read_text() + "\n" + line + "\n")


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
