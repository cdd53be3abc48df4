"""The tests' Django project: settings from ``CT_DJANGO`` (JSON: the Redis
URL for the caches, the SQLite file, the PostgreSQL database), set by the
``django_caches`` fixture and inherited by spawned processes and workers."""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["configure_django", "django_settings"]


def django_settings(spec: dict[str, Any]) -> dict[str, Any]:
    caches: dict[str, Any] = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    if spec.get("redis"):
        caches["redis"] = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": spec["redis"]}
    databases: dict[str, Any] = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": spec.get("sqlite") or ":memory:"}
    }
    if spec.get("pg"):
        databases["pg"] = spec["pg"]
    return {
        "CACHES": caches,
        "DATABASES": databases,
        "USE_TZ": True,
        "SECRET_KEY": "celery-triggers-tests",
        "INSTALLED_APPS": [
            "django.contrib.admin",
            "django.contrib.staticfiles",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "celery_triggers.contrib.django",
        ],
        "MIDDLEWARE": [
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        "TEMPLATES": [
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        "ROOT_URLCONF": "tests.django_urls",
        "STATIC_URL": "/static/",
        "ALLOWED_HOSTS": ["127.0.0.1", "localhost", "testserver"],
        "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"],  # fast, for tests only
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
    }


def configure_django(redis_url: str | None = None) -> dict[str, Any]:
    """Configure Django once in this process, from ``CT_DJANGO`` (set by
    the ``django_caches`` fixture) or with ``redis_url`` alone."""
    import django
    from django.conf import settings

    spec = json.loads(os.environ.get("CT_DJANGO", "{}"))
    if redis_url:
        spec.setdefault("redis", redis_url)
    config = django_settings(spec)
    if not settings.configured:
        settings.configure(**config)
        django.setup()
    return dict(settings.CACHES)
