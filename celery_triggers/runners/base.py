"""Deprecated alias of :mod:`celery_triggers.producer.runners.base` (moved in 0.2; this path keeps
working for one release)."""

from __future__ import annotations

import warnings

from ..producer.runners.base import *  # noqa: F403 - the whole public surface of the new home
from ..producer.runners.base import __all__  # noqa: F401

warnings.warn(
    "celery_triggers.runners.base moved to celery_triggers.producer.runners.base; import it from there "
    "(this alias goes in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
