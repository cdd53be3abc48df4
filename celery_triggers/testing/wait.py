"""``wait_until_idle``: wait for a session on a real worker (a thin use of
``session.wait``)."""

from __future__ import annotations

from ..core.errors import WaitTimeout
from ..core.state import Instance
from ..session.manager import TriggerManager

__all__ = ["wait_until_idle"]


def wait_until_idle(session: TriggerManager, timeout: float = 30.0, interval: float = 0.1) -> dict[str, Instance]:
    """``session.wait(timeout)`` for tests: fails (``AssertionError``) with
    a readable summary of what is still busy after ``timeout`` seconds."""
    try:
        return session.wait(timeout, interval=interval)
    except WaitTimeout as exc:
        raise AssertionError(str(exc)) from None
