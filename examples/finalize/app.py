"""Cookbook: finalizing a session.

Fire ``sessionFinalized`` by itself once every other trigger task of the
session is resolved, by overriding the manager's ``_post_fire`` hook. The
worker uses the same manager class for cascades (``triggers_manager_class``),
so the check runs after every trigger, wherever it fired.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from celery_triggers import Instance, TriggerManager, Triggers, trigger_task

SESSION_FINALIZED = "sessionFinalized"


class FinalizingTriggerManager(TriggerManager):
    def _post_fire(self, trigger_name: str, tasks_scheduled: list[Instance]) -> None:
        if trigger_name == SESSION_FINALIZED:  # no recursion
            return
        if self.latest_kwargs(SESSION_FINALIZED) is not None:  # finalize once
            return
        for config in self.get_unresolved_tasks():
            if SESSION_FINALIZED not in config.after:  # something else is pending
                return
        self.fire(SESSION_FINALIZED)


def make_app(storage: str = "memory://", runner: str = "eager") -> Celery:
    app = Celery("finalize", set_as_current=False)
    app.conf.update(
        triggers_storage=storage,
        triggers_runner=runner,
        triggers_manager_class=FinalizingTriggerManager,
        task_ignore_result=True,
    )
    Triggers(app)

    @trigger_task(after=["firstPageReceived"], name="t_importSubject")
    @app.task(shared=False, name="finalize.import_subject")
    def import_subject(trigger_kwargs: dict[str, Any]) -> dict[str, Any]:
        return {"subject": trigger_kwargs["firstPageReceived"]["subject"]}

    @trigger_task(after=["t_importSubject"], and_every="pageReceived", name="t_importResponses")
    @app.task(shared=False, name="finalize.import_responses")
    def import_responses(trigger_kwargs: dict[str, Any]) -> int:
        return len(trigger_kwargs["pageReceived"]["answers"])

    @trigger_task(after=[SESSION_FINALIZED], name="t_markComplete")
    @app.task(shared=False, name="finalize.mark_complete")
    def mark_complete() -> str:
        return "complete"

    return app


def main() -> dict[str, Instance]:
    app = make_app()
    session = app.triggers.session("questionnaire-1")
    session.fire("pageReceived", {"answers": [1, 2]})
    session.fire("pageReceived", {"answers": [3]})
    session.fire("firstPageReceived", {"subject": "S-1"})
    instances: dict[str, Instance] = session.instances
    for name, instance in instances.items():
        print(f"{name:22} {instance.status.value:9} result={instance.result}")
    return instances


if __name__ == "__main__":
    main()
