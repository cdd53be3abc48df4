"""A click ``CliRunner`` that keeps stderr apart from stdout on every click we support.

click 8.2 and later keep them apart by default (``result.output`` is both, as a
terminal shows them); click 8.1 mixes them unless asked not to, and then has no
``result.stderr``. Tests that parse ``--json`` from stdout use this one.
"""

from __future__ import annotations

import inspect
from typing import Any

from click.testing import CliRunner


def apart() -> CliRunner:
    options: dict[str, Any] = {}
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        options["mix_stderr"] = False
    return CliRunner(**options)
