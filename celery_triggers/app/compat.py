"""Spellings of celery-triggers 0.1.0 kept for a deprecation period."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

__all__ = ["legacy_kwargs"]


def legacy_kwargs(
    trigger_kwargs: Mapping[str, Any] | None, kwargs: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    if kwargs is None:
        return trigger_kwargs
    if trigger_kwargs is not None:
        raise TypeError("fire() got both trigger_kwargs and kwargs (its deprecated spelling)")
    warnings.warn(
        "app.triggers.fire(..., kwargs=...) is deprecated: use trigger_kwargs=, as TriggerManager.fire does",
        DeprecationWarning,
        stacklevel=3,
    )
    return kwargs
