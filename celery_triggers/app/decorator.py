"""``@trigger_task``: declare when an existing Celery task runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from ..core.config import parse_config
from ..core.errors import ConfigurationError
from ..worker.protocol import wrap_task
from .extension import Triggers

__all__ = ["trigger_task"]

T = TypeVar("T")


def _is_task(value: Any) -> bool:
    return not isinstance(value, str) and hasattr(value, "apply_async") and hasattr(value, "name")


def trigger_task(
    after: Iterable[Any] = (),
    *,
    name: str | None = None,
    and_every: Any = None,
    unless: Iterable[Any] = (),
    with_params: Mapping[str, Mapping[str, Any]] | None = None,
    using: str | None = None,
    within: float | None = None,
    on_timeout: Any = None,
    extras: Mapping[str, Any] | None = None,
    **unknown: Any,
) -> Callable[[T], T]:
    """Register a trigger task that runs the decorated Celery task.

    Place it above ``@app.task``::

        @trigger_task(after=["startSession", "observationsReceived"])
        @app.task
        def create_applicant(trigger_kwargs): ...

    The trigger task is named ``t_`` + the task's short name unless
    ``name=`` is given. ``after``, ``and_every`` and ``unless`` accept Celery
    task objects (standing for their trigger task) as well as trigger names.
    ``within=3600`` gives each instance a deadline (seconds from its first
    trigger); past it, the instance is abandoned and ``on_timeout`` fires.
    Custom directives go in ``extras={...}`` (``config.extras``); any other
    keyword is refused, with "did you mean" for a near-miss (``unles=``).
    """

    def decorate(task: T) -> T:
        if not _is_task(task):
            raise ConfigurationError(f"@trigger_task decorates a Celery task (put it above @app.task), got {task!r}")
        ext = Triggers(task.app)  # type: ignore[attr-defined]  # T is any Celery task
        task_name: str = task.name  # type: ignore[attr-defined]  # checked by _is_task
        config_name = name or "t_" + task_name.rsplit(".", 1)[-1]
        if unknown:
            from ..core.config import _near_directive

            hints = []
            for key in sorted(unknown):
                near = _near_directive(key)
                hints.append(f"{key!r}" + (f" (did you mean {near!r}?)" if near else ""))
            raise ConfigurationError(
                f"@trigger_task got unknown keyword(s) {', '.join(hints)}; pass custom directives as extras={{...}}",
                task=config_name,
            )
        if extras is not None and not isinstance(extras, Mapping):
            raise ConfigurationError(
                f"extras must be a dict of custom directives, got {type(extras).__name__}", task=config_name
            )

        def resolve(value: Any) -> Any:
            return ext.trigger_name_for(value, config_name) if _is_task(value) else value

        def resolve_list(directive: str, values: Any) -> Any:
            if isinstance(values, str) or not isinstance(values, Iterable):
                return values  # parse_config reports the wrong type
            return [resolve(v) for v in values]

        directives: dict[str, Any] = {"run": task_name, "after": resolve_list("after", after), **(extras or {})}
        if and_every is not None:
            directives["and_every"] = resolve(and_every)
        if unless:
            directives["unless"] = resolve_list("unless", unless)
        if with_params is not None:
            directives["with_params"] = with_params
        if using is not None:
            directives["using"] = using
        if within is not None:
            directives["within"] = within
        if on_timeout is not None:
            directives["on_timeout"] = resolve(on_timeout)
        ext.register(parse_config(config_name, directives))
        wrap_task(task)
        return task

    return decorate
