"""A minimal Django project with celery-triggers: ``python -m examples.django_shop``."""
