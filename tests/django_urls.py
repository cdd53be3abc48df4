"""The test project's URLs: Django's admin (with celery-triggers' pages), and
an async view that fires, as a project's would."""

from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import path


async def applied(request: HttpRequest, uid: str) -> JsonResponse:
    """An async view: fires without blocking the event loop (the ORM work of
    django-db:// runs where Django runs synchronous code)."""
    from celery_triggers.contrib.django.integration import celery_app

    scheduled = await celery_app().triggers.afire(uid, "applied", {"ok": request.GET.get("ok") == "1"})
    return JsonResponse({"scheduled": [i.name for i in scheduled]})


urlpatterns = [path("admin/", admin.site.urls), path("applied/<str:uid>/", applied)]
