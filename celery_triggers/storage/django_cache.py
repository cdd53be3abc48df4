"""Deprecated alias of :mod:`celery_triggers.contrib.django.cache` (moved in 0.2; this path keeps
working for one release)."""

from __future__ import annotations

import warnings

from ..contrib.django.cache import *  # noqa: F403 - the whole public surface of the new home
from ..contrib.django.cache import __all__  # noqa: F401

warnings.warn(
    "celery_triggers.storage.django_cache moved to celery_triggers.contrib.django.cache; import it from there "
    "(this alias goes in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
