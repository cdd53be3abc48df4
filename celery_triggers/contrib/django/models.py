"""Where ``django-db://`` keeps sessions: one row per session, trigger
record, task record and instance, and an index of unstarted instances by
each trigger they await (so a fire reads only what it can change)."""

from __future__ import annotations

from typing import Any

from django.db import models

from ...core.state import Instance, Status

__all__ = ["Deadline", "FireKey", "Session", "TaskInstance", "TaskRecord", "TriggerRecord", "Waiting"]

STATUS_CHOICES = [(s.value, s.value) for s in Status]


class Session(models.Model):
    uid = models.CharField("UID", max_length=1024, unique=True)
    #: The session's own task configs (``update_configuration``), if any.
    configs = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = "trigger session"
        ordering = ("-updated_at",)

    def __str__(self) -> str:
        return self.uid


class _Record(models.Model):
    name = models.CharField(max_length=256)
    data = models.JSONField()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.name


class TriggerRecord(_Record):
    """A trigger that fired in the session: how often, its latest kwargs."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="trigger_records")

    class Meta:
        constraints = (models.UniqueConstraint(fields=("session", "name"), name="ct_trigger_unique"),)


class TaskRecord(_Record):
    """Per task: the next instance number."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="task_records")

    class Meta:
        constraints = (models.UniqueConstraint(fields=("session", "name"), name="ct_task_unique"),)


class TaskInstance(models.Model):
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="instances")
    name = models.CharField(max_length=300)
    task = models.CharField(max_length=256)
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=STATUS_CHOICES)
    kwargs = models.JSONField(default=dict)
    result = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(default=dict)
    awaiting = models.JSONField(default=list)
    unless_fired = models.JSONField(default=list)

    class Meta:
        verbose_name = "trigger task instance"
        constraints = (models.UniqueConstraint(fields=("session", "name"), name="ct_instance_unique"),)
        indexes = (models.Index(fields=("session", "status"), name="ct_instance_status"),)

    def __str__(self) -> str:
        return self.name

    def to_record(self) -> dict[str, Any]:
        """The instance in the engine's record form."""
        return {
            "task": self.task,
            "number": self.number,
            "status": self.status,
            "kwargs": self.kwargs,
            "result": self.result,
            "metadata": self.metadata,
            "awaiting": self.awaiting,
            "unless_fired": self.unless_fired,
        }

    @staticmethod
    def fields_of(instance: Instance) -> dict[str, Any]:
        return {
            "task": instance.task,
            "number": instance.number,
            "status": instance.status.value,
            "kwargs": instance.kwargs,
            "result": instance.result,
            "metadata": instance.metadata,
            "awaiting": instance.awaiting,
            "unless_fired": instance.unless_fired,
        }


class Waiting(models.Model):
    """An unstarted instance, listed under a trigger it still awaits."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="+")
    task = models.CharField(max_length=256)
    trigger = models.CharField(max_length=256)
    instance = models.ForeignKey(TaskInstance, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=("session", "task", "trigger", "instance"), name="ct_waiting_unique"),
        )


class Deadline(models.Model):
    """An unstarted instance with a deadline, by due time (what the
    workers' deadline sweep reads, through the index on ``due``). Keyed by
    the session's UID, not its row: indexing costs no look-up, and an entry
    whose session is gone is dropped by the sweep."""

    session_uid = models.CharField("session UID", max_length=1024)
    name = models.CharField(max_length=256)
    due = models.FloatField(db_index=True)

    class Meta:
        constraints = (models.UniqueConstraint(fields=("session_uid", "name"), name="ct_deadline_unique"),)

    def __str__(self) -> str:
        return f"{self.name} due {self.due}"


class FireKey(models.Model):
    """An idempotency key a fire used (``fire(..., key=...)``), and the
    instances that fire scheduled; deleted with its session."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=256)
    names = models.JSONField(default=list)

    class Meta:
        verbose_name = "fire idempotency key"
        constraints = (models.UniqueConstraint(fields=("session", "key"), name="ct_key_unique"),)

    def __str__(self) -> str:
        return self.key
