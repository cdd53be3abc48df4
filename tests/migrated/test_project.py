"""The project's tests, as written for the original framework (unittest and
its mixin); only the imports changed."""

from __future__ import annotations

from unittest import TestCase

from django.conf import settings

# from triggers.manager import TriggerManager
# from triggers.runners import ThreadingTaskRunner
# from triggers.storage_backends.cache import CacheStorageBackend
# from triggers.task import MaxRetriesExceeded
# from triggers.testing import TriggerManagerTestCaseMixin
from celery_triggers.compat import (
    CacheStorageBackend,
    MaxRetriesExceeded,
    ThreadingTaskRunner,
    TriggerManager,
    TriggerManagerTestCaseMixin,
)

from .proj import CONFIGURATION

if not settings.configured:  # the project's Django settings, as before
    import django

    settings.configure(CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}})
    django.setup()


class ScoringTestCase(TriggerManagerTestCaseMixin, TestCase):
    def setUp(self) -> None:
        self.manager = TriggerManager(CacheStorageBackend(self._testMethodName))
        self.manager.update_configuration(CONFIGURATION)

    def test_score_after_import_and_finalization(self) -> None:
        self.manager.fire("firstPageReceived", {"responses": {"q1": 3}})
        ThreadingTaskRunner.join_all()
        self.assertInstanceFinished("t_importSubject#0", {"subjectId": 42})
        self.assertInstanceUnstarted("t_computeScore#0")
        self.assertUnresolvedInstances(["t_computeScore#0"])

        self.manager.fire("sessionFinalized")
        ThreadingTaskRunner.join_all()
        self.assertInstanceFinished("t_computeScore#0", {"score": 84})
        self.assertUnresolvedTasks(["t_flaky"])
        self.assertEqual(self.manager.storage["t_computeScore#0"].status, "finished")

    def test_a_task_that_keeps_retrying_gives_up(self) -> None:
        self.manager.fire("flaky")
        ThreadingTaskRunner.join_all()
        self.assertInstanceReplayed("t_flaky#0")
        self.assertInstanceFailed("t_flaky#1", MaxRetriesExceeded)

    def test_a_trigger_nobody_uses_changes_nothing(self) -> None:
        self.manager.fire("unknown")
        self.assertInstanceMissing("t_importSubject#0")
