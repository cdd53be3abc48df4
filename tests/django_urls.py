"""The test project's URLs: Django's admin (with celery-triggers' pages)."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
