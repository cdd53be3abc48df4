"""Retry a call with exponential back-off and jitter, for a bounded time."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["call_with_backoff"]

R = TypeVar("R")


def call_with_backoff(
    fn: Callable[[], R],
    *,
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
    give_up_on: type[BaseException] | tuple[type[BaseException], ...] = (),
    timeout: float,
    first_delay: float = 0.05,
    max_delay: float = 2.0,
    on_retry: Callable[[BaseException, int, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> R:
    """Call ``fn`` until it returns, retrying on ``retry_on`` (but not on
    ``give_up_on``) for at most ``timeout`` seconds; then re-raise the last
    error. ``on_retry(exc, attempt, delay)`` is told of each retry."""
    deadline = time.monotonic() + timeout
    delay = first_delay
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except give_up_on:
            raise
        except retry_on as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise
            pause = min(delay * random.uniform(0.5, 1.0), remaining)  # noqa: S311 - jitter, not crypto
            if on_retry is not None:
                on_retry(exc, attempt, pause)
            sleep(pause)
            delay = min(delay * 2, max_delay)
