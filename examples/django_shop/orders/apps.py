from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"

    def ready(self) -> None:
        from . import tasks  # noqa: F401 - declares the trigger tasks in every process
