"""The operator's window: trigger sessions in Django's admin.

- The sessions list: instance counts by status, last activity; filters
  "has failed", "unresolved" and "last change older than".
- A session's page: its instances (status, kwargs per trigger, result, task
  id, timestamps, exception and traceback) and the workflow drawn from the
  configuration in status colours.
- Actions, each a POST with Django's CSRF check, recorded in the admin log:
  replay a failed instance (optionally with kwargs per trigger), skip it
  (optionally cascading a result), redispatch a scheduled one, recover the
  session, delete the session. Replay, skip, redispatch and recover need the
  ``change`` permission on trigger sessions, delete the ``delete`` one; a
  user with ``view`` only sees the pages, without the forms.

The actions go through the project's Celery app (see :mod:`.integration`),
so a replayed instance's message goes to the workers like any other.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Max, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from ...core.errors import TriggersError
from ...core.state import INTERNAL_PREFIX, RESOLVED, Status
from .actions import ACTIONS, database_alias, manager_for, run_action
from .models import Session

__all__ = ["SessionAdmin"]

_UNRESOLVED = [s.value for s in Status if s not in RESOLVED]


class _HasAny(admin.SimpleListFilter):
    """Yes/no on an annotated count (``count``) being above zero."""

    count = ""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Session]) -> QuerySet[Session]:
        if self.value() in ("yes", "no"):
            above = queryset.filter(**{f"{self.count}__gt": 0})
            return above if self.value() == "yes" else queryset.filter(**{self.count: 0})
        return queryset


class HasFailedFilter(_HasAny):
    title = "has a failed instance"
    parameter_name = "failed"
    count = "n_failed"


class UnresolvedFilter(_HasAny):
    title = "unresolved"
    parameter_name = "unresolved"
    count = "n_unresolved"


class OlderThanFilter(admin.SimpleListFilter):
    title = "last change older than"
    parameter_name = "older_than"
    _SPANS = {"1h": timedelta(hours=1), "1d": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(key, key) for key in self._SPANS]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Session]) -> QuerySet[Session]:
        span = self._SPANS.get(self.value() or "")
        return queryset if span is None else queryset.filter(updated_at__lt=timezone.now() - span)


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ("uid", "instances", "unresolved", "failed", "updated_at")
    list_filter = (HasFailedFilter, UnresolvedFilter, OlderThanFilter)
    search_fields = ("uid",)
    ordering = ("-updated_at",)
    change_form_template = "celery_triggers/session.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Session]:
        return (
            super()
            .get_queryset(request)
            .using(database_alias())
            .exclude(uid__startswith=INTERNAL_PREFIX)  # celery-triggers' own bookkeeping
            .annotate(
                n_instances=Count("instances"),
                n_failed=Count("instances", filter=Q(instances__status=Status.FAILED.value)),
                n_unresolved=Count("instances", filter=Q(instances__status__in=_UNRESOLVED)),
                last_instance=Max("instances__number"),
            )
        )

    @admin.display(description="instances", ordering="n_instances")
    def instances(self, obj: Session) -> int:
        return int(obj.n_instances)

    @admin.display(description="unresolved", ordering="n_unresolved")
    def unresolved(self, obj: Session) -> int:
        return int(obj.n_unresolved)

    @admin.display(description="failed", ordering="n_failed")
    def failed(self, obj: Session) -> int:
        return int(obj.n_failed)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # sessions start when a trigger fires

    def get_urls(self) -> list[Any]:
        action = self.admin_site.admin_view(require_POST(self.action_view))
        own = path("<path:object_id>/do/<str:action>/", action, name="celery_triggers_session_action")
        return [own, *super().get_urls()]

    # -- the session's page -------------------------------------------------
    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        session = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_view_or_change_permission(request, session):
            raise PermissionDenied
        from .views import session_context

        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": session,
            "title": f"Trigger session {session.uid}",
            "can_change": self.has_change_permission(request, session),
            "can_delete": self.has_delete_permission(request, session),
            **session_context(session),
            **(extra_context or {}),
        }
        return TemplateResponse(request, self.change_form_template, context)

    # -- actions --------------------------------------------------------------
    def action_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        session = get_object_or_404(Session.objects.using(database_alias()), pk=object_id)
        if action not in ACTIONS:
            raise PermissionDenied
        allowed = (
            self.has_delete_permission(request, session)
            if action == "delete"
            else self.has_change_permission(request, session)
        )
        if not allowed:
            raise PermissionDenied
        back = reverse("admin:celery_triggers_session_change", args=[session.pk])
        if action == "delete":
            back = reverse("admin:celery_triggers_session_changelist")
        try:
            message = run_action(manager_for(session), action, request.POST)
        except (TriggersError, ValueError) as exc:
            self.message_user(request, f"{action}: {exc}", messages.ERROR)
            return HttpResponseRedirect(back)
        self.log_change(request, session, message)
        self.message_user(request, message, messages.SUCCESS)
        return HttpResponseRedirect(back)
