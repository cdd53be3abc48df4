"""A small project written for the original Triggers framework, migrated by
changing its imports (each former import is in a comment above its new one).

The one line that is not an import: ``Triggers(app)`` installs the
extension on the project's Celery app (the original read Django settings).
"""

from __future__ import annotations

from typing import Any

import filters as f
from celery import Celery

from celery_triggers import Triggers

# from triggers.task import TaskContext, TriggerTask
from celery_triggers.compat import TaskContext, TriggerTask

app = Celery("migrated", broker="memory://")
app.conf.update(triggers_storage="memory://", triggers_runner="threading", task_ignore_result=True)
Triggers(app)


class ImportSubject(TriggerTask):
    name = "migrated.import_subject"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        data = context.filter_kwargs({"firstPageReceived": {"responses": f.Required | f.Type(dict)}})
        with context.get_logger_context() as logger:
            logger.info("%d responses", len(data["firstPageReceived"]["responses"]))
        return {"subjectId": 42}


class ComputeScore(TriggerTask):
    name = "migrated.compute_score"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        params = context.trigger_kwargs["t_computeScore"]
        return {"score": context.trigger_kwargs["t_importSubject"]["subjectId"] * params["factor"]}


class Flaky(TriggerTask):
    name = "migrated.flaky"
    max_retries = 1

    def _run(self, context: TaskContext) -> None:
        raise self.retry(exc=RuntimeError("upstream down"))


for task in (ImportSubject, ComputeScore, Flaky):
    app.register_task(task())

CONFIGURATION = {
    "t_importSubject": {"after": ["firstPageReceived"], "run": "migrated.import_subject"},
    "t_computeScore": {
        "after": ["t_importSubject", "sessionFinalized"],
        "run": "migrated.compute_score",
        "withParams": {"t_computeScore": {"factor": 2}},
    },
    "t_flaky": {"after": ["flaky"], "run": "migrated.flaky"},
}
