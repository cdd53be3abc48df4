"""One resolver for the plugin registries (storage schemes, runners): a
name is looked up in this process's registrations, then the built-in table
(``"module:Class"``, imported on first use), then an entry point group,
then, for a name with a dot or a colon, a dotted path (``"proj.runners:Lambda"``
or ``"proj.runners.Lambda"``), as rq's ``resolve_serializer`` does."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

__all__ = ["plugin_names", "resolve_plugin"]


def resolve_plugin(
    name: str, builtin: Mapping[str, str], group: str, registered: Mapping[str, Any] | None = None
) -> Any | None:
    """The class registered as ``name``, or None."""
    if registered and name in registered:
        return registered[name]
    target = builtin.get(name)
    if target is not None:
        module, _, attr = target.partition(":")
        return getattr(import_module(module), attr)
    for ep in entry_points(group=group):
        if ep.name == name:
            return ep.load()
    if ":" in name or "." in name:
        return _import_path(name)
    return None


def _import_path(path: str) -> Any | None:
    """``module:attr`` or ``module.attr``; None if the module or attribute
    does not exist (an import error inside the module propagates)."""
    module, sep, attr = path.partition(":")
    if not sep:
        module, _, attr = path.rpartition(".")
    if not module or not attr:
        return None
    try:
        found = import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.startswith(exc.name):
            return None
        raise
    return getattr(found, attr, None)


def plugin_names(builtin: Mapping[str, str], group: str, registered: Mapping[str, Any] | None = None) -> list[str]:
    return sorted({*builtin, *(registered or {}), *(ep.name for ep in entry_points(group=group))})
