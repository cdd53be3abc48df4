"""A Celery config module that reads celery-triggers' settings from the
environment, as a twelve-factor deployment does: each ``TRIGGERS_*``
variable becomes the setting of that name in lower case, as the string it
is (``celery -A proj worker --config tests.env_config``, or
``CELERY_CONFIG_MODULE=tests.env_config``)."""

from __future__ import annotations

import os as _os

for _key, _value in _os.environ.items():
    if _key.startswith("TRIGGERS_"):
        globals()[_key.lower()] = _value
