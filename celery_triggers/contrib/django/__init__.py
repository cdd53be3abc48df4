"""celery-triggers for Django projects: add ``"celery_triggers.contrib.django"``
to ``INSTALLED_APPS``.

- The app's ``ready()`` installs the extension on the project's Celery app
  (``CELERY_TRIGGERS_APP``, default: Celery's default app once
  ``proj/celery.py`` has created it), so settings are read as
  ``CELERY_TRIGGERS_STORAGE`` etc. with ``namespace="CELERY"``.
- ``django-db://`` (or ``django-db://<alias>``) stores sessions in the
  project's database (models in :mod:`.models`, one transaction per
  operation that locks only its session).
- The admin lists sessions and shows each one's instances, with replay,
  skip, redispatch, recover and delete actions (:mod:`.admin`).

Nothing happens at import time.
"""
