"""The package's house, as docs/architecture.md draws it: its folders are
its layers, data flows one way (a layer imports only those below it, at
module level, inside functions and under ``TYPE_CHECKING`` alike), the
pure core imports neither Celery nor storage, no module imports itself
back through others, and no module is a wall of code. Checked on the
source, so a wrong import fails here."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "celery_triggers"

#: Folder (or top-level module) -> layer. A module may import its own layer and below.
LAYERS = {
    "core": 1,
    "storage": 2,
    "session": 3,
    "producer": 4,
    "worker": 5,
    "app": 6,
    "cli": 7,
    "testing": 7,
    "contrib": 7,
    "compat": 7,
    "observe": 7,
    "runners": 7,
    "__init__": 7,
}
#: Deprecated aliases of moved modules: they import their new home, whatever its layer.
ALIASES = {
    "runners/__init__.py",
    "runners/base.py",
    "runners/celery.py",
    "runners/eager.py",
    "runners/threaded.py",
    "storage/django_cache.py",
}
#: The edges: each may import the layers below it, never another edge, so
#: that one can be left out or replaced without the others noticing (what
#: two edges share lives below them, e.g. ``session/summary.py``).
EDGES = ("cli", "testing", "contrib", "compat", "observe")
#: The edges an edge may import nonetheless, each with its reason.
EDGE_IMPORTS: dict[str, set[str]] = {
    # compat is the original framework's names under one roof: it defines
    # nothing, it re-exports, and two of those names live in edges
    # (TriggerManagerTestCaseMixin in testing, CacheStorageBackend, imported
    # on first use, in the Django app). Nothing imports compat, so this
    # makes no edge depend on another through it.
    "compat": {"testing", "contrib"},
}
#: What the pure core may not import.
IMPURE = ("celery", "kombu", "redis", "django", "sqlite3", "storage", "socket", "asyncio")
#: Modules past this many lines are asking to be split.
MAX_LINES = 400
#: Attributes that are a framework's public API despite the underscore.
FRAMEWORK_NAMES = {"_meta", "_replace", "_asdict", "_fields", "_make", "_get_current_object"}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def _name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def _imports(path: Path, source: str | None = None, *, typing: bool = True) -> Iterator[tuple[str, int]]:
    """Every module of the package (or top-level package) ``path`` imports,
    with the line, wherever the import stands (``typing`` false: except
    under ``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text() if source is None else source)
    here = _name(path).split(".")
    if path.name != "__init__.py":
        here = here[:-1]
    type_only: set[int] = set()
    if not typing:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                type_only |= {id(n) for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = (node.module or "").split(".")
            else:
                base = here[: len(here) - (node.level - 1)] + (node.module.split(".") if node.module else [])
            for alias in node.names:
                yield ".".join([*base, alias.name]) if node.module is None else ".".join(base), node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno


def _unit_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "celery_triggers":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _violations(path: Path, source: str | None = None) -> list[str]:
    if str(path.relative_to(PACKAGE)) in ALIASES:
        return []
    unit = _unit(path)
    found = []
    for module, line in _imports(path, source):
        target = _unit_of(module)
        if target is not None and target in LAYERS and LAYERS[target] > LAYERS[unit]:
            found.append(f"{unit} (layer {LAYERS[unit]}) imports {target} (layer {LAYERS[target]}) at line {line}")
        top = module.split(".")[0]
        if unit == "core" and (top in IMPURE or target == "storage"):
            found.append(f"core imports {target or top} at line {line}")
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_layers_are_one_way(path: Path) -> None:
    assert _violations(path) == []


@pytest.mark.parametrize(
    ("module", "line", "expected"),
    [
        ("core/config.py", "from ..session import signals", "core (layer 1) imports session (layer 3)"),
        ("core/engine/work.py", "    from ...app import extension", "core (layer 1) imports app (layer 6)"),
        ("core/engine/lifecycle.py", "import celery", "core imports celery"),
        ("core/state.py", "from ..storage import base", "core imports storage"),
        ("storage/base.py", "from ..session import manager", "storage (layer 2) imports session (layer 3)"),
        ("storage/base.py", "from ..producer.runners import eager", "storage (layer 2) imports producer (layer 4)"),
        ("worker/protocol.py", "from celery_triggers.app import extension", "worker (layer 5) imports app (layer 6)"),
        ("session/manager.py", "from ..cli import views", "session (layer 3) imports cli (layer 7)"),
    ],
)
def test_a_wrong_import_fails_the_layer_test(module: str, line: str, expected: str) -> None:
    """Mutations: each import added to a real module is caught, at the top,
    inside a function or only for type checking."""
    path = PACKAGE / module
    source = path.read_text()
    for variant in (line, f"def _late() -> None:\n    {line.strip()}\n", f"if TYPE_CHECKING:\n    {line.strip()}\n"):
        assert any(expected in v for v in _violations(path, source + "\n" + variant + "\n")), variant


def _edge_violations(path: Path, source: str | None = None) -> list[str]:
    """An edge (or the package's root, which imports no edge either)
    importing an edge other than itself and those it is allowed."""
    unit = _unit(path)
    if unit not in EDGES and unit != "__init__":
        return []
    allowed = {unit, *EDGE_IMPORTS.get(unit, set())}
    found = []
    for module, line in _imports(path, source):
        target = _unit_of(module)
        if target in EDGES and target not in allowed:
            found.append(f"{unit} imports the edge {target} at line {line}")
    return found


@pytest.mark.parametrize(
    "path",
    [p for p in _modules() if _unit(p) in (*EDGES, "__init__")],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_no_edge_imports_another_edge(path: Path) -> None:
    assert _edge_violations(path) == []


@pytest.mark.parametrize(
    ("module", "line", "expected"),
    [
        ("contrib/django/graph.py", "from ...cli.graph import to_dot", "contrib imports the edge cli"),
        ("cli/views.py", "from ..contrib.django import views", "cli imports the edge contrib"),
        ("cli/render.py", "from ..testing import wait_until_idle", "cli imports the edge testing"),
        ("testing/wait.py", "from ..compat import TaskContext", "testing imports the edge compat"),
        ("compat.py", "from .cli import triggers", "compat imports the edge cli"),
        ("__init__.py", "from .testing import wait_until_idle", "__init__ imports the edge testing"),
    ],
)
def test_an_edge_importing_another_fails_the_edge_test(module: str, line: str, expected: str) -> None:
    """Mutations: at the top, inside a function or only for type checking."""
    path = PACKAGE / module
    source = path.read_text()
    for variant in (line, f"def _late() -> None:\n    {line.strip()}\n", f"if TYPE_CHECKING:\n    {line.strip()}\n"):
        assert any(expected in v for v in _edge_violations(path, source + "\n" + variant + "\n")), variant


def test_each_edge_import_allowed_is_still_made() -> None:
    """An allowance nothing uses any more is removed, not left open."""
    for unit, targets in EDGE_IMPORTS.items():
        paths = [p for p in _modules() if _unit(p) == unit]
        made = {_unit_of(module) for path in paths for module, _ in _imports(path)}
        assert targets <= made, f"{unit} no longer imports {sorted(targets - made)}"


def test_every_folder_says_what_lives_there_and_what_it_may_import() -> None:
    for unit, layer in LAYERS.items():
        init = PACKAGE / unit / "__init__.py"
        if not init.exists() or str(init.relative_to(PACKAGE)) in ALIASES:
            continue
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "import" in doc, f"{unit}/__init__.py: its docstring says what it may import (layer {layer})"


def _graph() -> dict[str, set[str]]:
    known = {_name(p): p for p in _modules()}
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        graph[name] = set()
        for module, _ in _imports(path, typing=False):
            target = module if module in known else module.rpartition(".")[0]
            if target in known and target != name and not name.startswith(target + "."):
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = []
            while True:
                item = stack.pop()
                group.append(item)
                if item == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_back_through_others() -> None:
    """Function-local imports count: a cycle hidden inside a function is
    still a cycle of the design. A name imported only for type checking
    may point back within a layer (the layer test keeps it from pointing up)."""
    assert _cycles(_graph()) == []


def test_a_cycle_is_caught() -> None:
    graph = _graph()
    graph["celery_triggers.core.state"].add("celery_triggers.core.engine")
    assert ["celery_triggers.core.engine", "celery_triggers.core.state"] in [
        [m for m in group if m in ("celery_triggers.core.engine", "celery_triggers.core.state")]
        for group in _cycles(graph)
    ]


def test_no_module_passes_the_size_that_asks_for_a_split() -> None:
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in _modules()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def _private_reaches() -> list[str]:
    """``x._name`` where ``x`` is not ``self``/``cls``/``super()``: a reach
    into another object's private members."""
    found = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")):
                continue
            owner = node.value
            if node.attr in FRAMEWORK_NAMES or (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                continue
            if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
                continue
            found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {ast.unparse(node)}")
    return found


def test_few_reaches_into_other_objects_private_members() -> None:
    """The package's own pieces talk through public names; what is left
    reaches into a framework's internals that have no public door (each
    commented where it stands)."""
    reaches = _private_reaches()
    assert len(reaches) <= 10, "\n".join(reaches)


def test_importing_the_package_has_no_side_effects(tmp_path: Path) -> None:
    """No app, no connection, no file: importing is free."""
    code = (
        "import sys, celery_triggers, celery_triggers.testing, celery_triggers.cli;"
        "from celery import _state;"
        "assert _state.default_app is None, 'a default app was created';"
        "lazy = ('celery_triggers.storage.redis', 'celery_triggers.contrib.django.cache', 'rich', 'pydantic',"
        " 'celery_triggers.observe', 'opentelemetry', 'prometheus_client');"
        "assert not [m for m in lazy if m in sys.modules], [m for m in lazy if m in sys.modules]"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_a_moved_module_keeps_working_at_its_old_path_with_a_warning_naming_the_new_one(
    alias: str, tmp_path: Path
) -> None:
    """In a fresh process: the old path imports, warns once with the new
    path, and gives the same objects."""
    old = _name(PACKAGE / alias)
    code = (
        "import importlib, warnings, sys\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        f"    old = importlib.import_module({old!r})\n"
        "messages = [str(w.message) for w in seen if w.category is DeprecationWarning]\n"
        f"assert any(m.startswith({old!r} + ' moved to celery_triggers.') for m in messages), messages\n"
        "new = importlib.import_module(messages[-1].split(' moved to ')[1].split(';')[0])\n"
        "assert old.__all__ and all(getattr(old, n) is getattr(new, n) for n in old.__all__), old.__all__\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
