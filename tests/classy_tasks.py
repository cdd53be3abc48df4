"""Class-based trigger tasks written the original framework's way, shared by
the eager tests (tests/test_task_class.py) and the real worker
(tests/worker_app.py)."""

from __future__ import annotations

from typing import Any

import filters as f

from celery_triggers import TaskContext, TriggerTask


class ImportSubject(TriggerTask):
    name = "classes.import_subject"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        data = context.filter_kwargs({"firstPageReceived": {"responses": f.Required | f.Type(dict), "page": f.Int}})
        with context.get_logger_context() as logger:
            logger.info("importing %s", data["firstPageReceived"]["responses"])
        return {"subjectId": 42, "page": data["firstPageReceived"]["page"]}


class SelfRetrying(TriggerTask):
    name = "classes.self_retrying"
    max_retries = 2

    def _run(self, context: TaskContext) -> dict[str, Any]:
        if self.request.retries < 2:
            raise self.retry(metadata={"why": "not yet"}, cooldown=0)
        return {"count": self.request.retries}


class AlwaysRetrying(TriggerTask):
    name = "classes.always_retrying"
    max_retries = 2

    def _run(self, context: TaskContext) -> None:
        raise self.retry(exc=ConnectionError("down"))


class SelfSkipping(TriggerTask):
    name = "classes.self_skipping"

    def _run(self, context: TaskContext) -> None:
        raise self.skip({"skippedBecause": "Needs more cowbell."})


def _attempts(context: TaskContext) -> int:
    return int(context.manager.instance(context.instance_name).metadata.get("attempts", 1))


class CeleryRetrying(TriggerTask):
    """Celery's form of ``self.retry``: the same message again, one instance."""

    name = "classes.celery_retrying"
    max_retries = 3

    def _run(self, context: TaskContext) -> dict[str, Any]:
        if _attempts(context) < 3:
            raise self.retry(exc=ValueError("not yet"), countdown=0)
        return {"attempts": _attempts(context), "replays": self.request.retries}


class CeleryGivingUp(TriggerTask):
    """Celery's form past the task's max_retries: Celery raises ``exc``."""

    name = "classes.celery_giving_up"
    max_retries = 1

    def _run(self, context: TaskContext) -> None:
        raise self.retry(exc=ValueError(f"attempt {_attempts(context)}"), countdown=0)


TASKS = (ImportSubject, SelfRetrying, AlwaysRetrying, SelfSkipping, CeleryRetrying, CeleryGivingUp)
CONFIGS = {
    "t_importSubject": {"after": ["firstPageReceived"], "run": ImportSubject.name},
    "t_retry": {"after": ["retry"], "run": SelfRetrying.name},
    "t_giveUp": {"after": ["giveUp"], "run": AlwaysRetrying.name},
    "t_skip": {"after": ["skip"], "run": SelfSkipping.name},
    "t_celeryRetry": {"after": ["celeryRetry"], "run": CeleryRetrying.name},
    "t_celeryGiveUp": {"after": ["celeryGiveUp"], "run": CeleryGivingUp.name},
}
