"""JSON written as it is produced: a document whose long lists are
iterators (:class:`Stream`) and whose totals are known only once those
are read (:class:`Later`), printed byte for byte as ``display_json(...,
indent=2)`` (``json.dumps`` with sorted keys, text as written) prints the
same document built in memory (keys in sorted order: a :class:`Later` after the streams it
follows alphabetically)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import click

from ..core.data import display_json

__all__ = ["Doc", "Later", "Stream", "echo_stream", "materialize", "write_json"]


class Doc(dict[str, Any]):
    """An object that holds a :class:`Stream` or :class:`Later` (directly,
    or in a nested :class:`Doc`); any other value is plain JSON."""


class Stream:
    """A list, produced item by item (read once)."""

    def __init__(self, items: Iterable[Any]):
        self.items = items


class Later:
    """A value computed when the writer reaches it."""

    def __init__(self, get: Callable[[], Any]):
        self.get = get


def _plain(value: Any, depth: int) -> str:
    return display_json(value, indent=2).replace("\n", "\n" + "  " * depth)


def write_json(value: Any, write: Callable[[str], None], depth: int = 0) -> None:
    """Write ``value`` (a :class:`Doc`, or plain JSON) through ``write``."""
    if isinstance(value, Later):
        value = value.get()
    if isinstance(value, Stream):
        first = True
        for item in value.items:
            write(("[\n" if first else ",\n") + "  " * (depth + 1))
            first = False
            write_json(item, write, depth + 1)
        write("[]" if first else "\n" + "  " * depth + "]")
    elif isinstance(value, Doc):
        if not value:
            write("{}")
            return
        for n, key in enumerate(sorted(value)):
            write(("{\n" if n == 0 else ",\n") + "  " * (depth + 1) + display_json(key) + ": ")
            write_json(value[key], write, depth + 1)
        write("\n" + "  " * depth + "}")
    else:
        write(_plain(value, depth))


def materialize(value: Any) -> Any:
    """The document built in memory (streams read in the writer's order)."""
    if isinstance(value, Later):
        return materialize(value.get())
    if isinstance(value, Stream):
        return [materialize(item) for item in value.items]
    if isinstance(value, Doc):
        done = {key: materialize(value[key]) for key in sorted(value)}
        return {key: done[key] for key in value}
    return value


def echo_stream(value: Any, chunk: int = 1 << 16) -> None:
    """Print ``value`` as :func:`write_json` writes it, then a newline, in
    chunks of about ``chunk`` characters (memory does not grow with it)."""
    parts: list[str] = []
    size = 0

    def write(text: str) -> None:
        nonlocal size
        parts.append(text)
        size += len(text)
        if size >= chunk:
            click.echo("".join(parts), nl=False)
            parts.clear()
            size = 0

    write_json(value, write)
    click.echo("".join(parts))
