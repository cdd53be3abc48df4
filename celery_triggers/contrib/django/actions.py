"""What the admin's buttons do, through the project's Celery app."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ...core.data import display_json
from ...core.errors import ConfigurationError, TriggersError
from ...session.host import installed
from ...session.manager import TriggerManager
from ...storage import mask_url
from .integration import install
from .models import Session

__all__ = ["ACTIONS", "database_alias", "manager_for", "run_action"]

ACTIONS = ("replay", "skip", "redispatch", "recover", "delete")


def database_alias() -> str:
    """The database the project's Celery app keeps sessions in (its
    ``django-db://<alias>`` storage), else ``default``: what the admin lists."""
    from .storage import DjangoDBStorage

    app = install()
    host: Any = installed(app) if app is not None else None
    if host is not None:
        try:
            storage = host.storage
        except (TriggersError, ImportError):  # a storage this process cannot open: list the default database
            return "default"
        if isinstance(storage, DjangoDBStorage):
            return storage.alias
    return "default"


def manager_for(session: Session) -> TriggerManager:
    """The manager of ``session`` on the project's Celery app, over the
    django-db storage holding it (the app's storage, or the entry of
    ``triggers_storages`` that names this database)."""
    from .storage import DjangoDBStorage

    app = install()
    host = installed(app) if app is not None else None
    if host is None:
        raise ConfigurationError("no Celery app with celery-triggers: set CELERY_TRIGGERS_APP = 'proj.celery:app'")
    alias = session._state.db or "default"
    ext: Any = host
    if isinstance(ext.storage, DjangoDBStorage) and ext.storage.alias == alias:
        return ext.session(session.uid)
    for name in ext.storage_aliases:
        storage = ext.storage_for(name)
        if isinstance(storage, DjangoDBStorage) and storage.alias == alias:
            return ext.session(session.uid, storage=name)
    raise ConfigurationError(
        f"the Celery app stores sessions in {mask_url(ext.storage_url)!r}, not in django-db://{alias}: "
        "set CELERY_TRIGGERS_STORAGE (or an entry of CELERY_TRIGGERS_STORAGES) to it"
    )


def _json(form: Mapping[str, str], key: str, what: str) -> Any:
    text = form.get(key, "") or ""
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{what} is not valid JSON ({exc})") from None


def run_action(manager: TriggerManager, action: str, form: Mapping[str, str]) -> str:
    """Do ``action`` with the POSTed ``form``; a line for the admin log."""
    instance = form.get("instance", "")
    if action == "replay":
        update = _json(form, "kwargs", "kwargs per trigger")
        if update is not None and not isinstance(update, dict):
            raise ValueError('kwargs per trigger must be an object like {"trigger": {"key": "value"}}')
        clone = manager.replay_failed_instance(instance, kwargs_update=update)
        return f"replayed {instance} as {clone.name}" + (f" with kwargs {display_json(update)}" if update else "")
    if action == "skip":
        cascade = form.get("cascade") in ("on", "true", "1")
        result = _json(form, "result", "the result")
        manager.skip_failed_instance(instance, cascade=cascade, result=result)
        return f"skipped {instance}" + (f", cascading {display_json(result)}" if cascade else "")
    if action == "redispatch":
        sent = manager.redispatch(instance)
        return f"redispatched {instance} (task id {sent.metadata.get('task_id')})"
    if action == "recover":
        older_than = float(form.get("older_than") or 60)
        ext: Any = manager.extension
        done = ext.recover([manager.uid], older_than=older_than)
        return f"recover: {', '.join(f'{a.instance} {a.action}' for a in done) or 'nothing to recover'}"
    if action == "delete":
        manager.storage.delete()
        return f"deleted session {manager.uid}"
    raise ValueError(f"unknown action {action!r}")
