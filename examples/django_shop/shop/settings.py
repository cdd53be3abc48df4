"""Settings of the example shop: SQLite, and kombu's filesystem transport as
the broker, so it runs with no servers. Everything lives under DATA."""

import os
from pathlib import Path

DATA = Path(os.environ.get("SHOP_DATA", Path(__file__).resolve().parent.parent / ".data")).resolve()
BROKER = DATA / "broker"

SECRET_KEY = os.environ.get("SHOP_SECRET_KEY", "example-only-not-secret")
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "celery_triggers.contrib.django",  # the extension on the Celery app, django-db://, the admin
    "orders",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "shop.urls"
TEMPLATES = [
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
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA / "shop.sqlite3",
        "OPTIONS": {"timeout": 30},
    }
}
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Celery (namespace "CELERY"): a broker with no server, and the sessions in
# the project's database.
CELERY_BROKER_URL = "filesystem://"
CELERY_BROKER_TRANSPORT = "celery_triggers.testing.filesystem:Transport"
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "data_folder_in": str(BROKER),
    "data_folder_out": str(BROKER),
    "control_folder": str(BROKER / "control"),
    "store_processed": False,
    "polling_interval": 0.02,
}
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TRIGGERS_STORAGE = "django-db://"
