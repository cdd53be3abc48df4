"""``celery -A proj triggers ...``: inspect, recover and draw sessions.

Registered through Celery's ``celery.commands`` entry point, so the app is
the one Celery loaded (``-A``, ``--broker``, config). Exit codes: 0 success,
1 refused or not found (one line on stderr), 2 usage.

The commands live by theme: reading (:mod:`.inspection`), acting on
instances (:mod:`.repair`), deleting (:mod:`.retention`), the workflow
(:mod:`.workflow`); what they share is :mod:`.common`'s.

An edge: may import every layer below the edges, no other edge; nothing in
the package imports it.
"""

from __future__ import annotations

import click

from .inspection import inspect, sessions
from .repair import fire, recover, redispatch, replay, skip
from .retention import delete, purge
from .workflow import graph, validate

__all__ = ["triggers"]


#: The commands, by theme: what they read, change, delete and draw.
COMMANDS = [inspect, sessions, fire, replay, skip, redispatch, recover, purge, delete, graph, validate]


@click.group(name="triggers", commands=COMMANDS)
def triggers() -> None:
    """Inspect, recover and draw celery-triggers sessions."""
