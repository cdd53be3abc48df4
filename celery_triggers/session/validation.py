"""``context.validate_kwargs``: trigger kwargs checked and converted by pydantic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.errors import KwargsValidationError

__all__ = ["filter_kwargs", "validate_kwargs"]


def validate_kwargs(instance: str, trigger_kwargs: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``trigger_kwargs[trigger]`` against ``spec[trigger]`` (a
    pydantic model, dataclass, TypedDict or any type pydantic accepts).

    Returns trigger -> converted value. Raises one
    :class:`KwargsValidationError` listing every invalid field, by trigger
    and path, and every trigger of the spec that the task did not receive.
    """
    try:
        from pydantic import TypeAdapter, ValidationError
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("validate_kwargs needs pydantic: pip install 'celery-triggers[pydantic]'") from exc

    errors: list[tuple[str, str, str]] = []
    result: dict[str, Any] = {}
    for trigger, model in spec.items():
        if trigger not in trigger_kwargs:
            known = ", ".join(sorted(trigger_kwargs)) or "none"
            errors.append((trigger, "", f"not a trigger of this task (it received: {known})"))
            continue
        try:
            result[trigger] = TypeAdapter(model).validate_python(trigger_kwargs[trigger])
        except ValidationError as exc:
            for error in exc.errors():
                path = ".".join(str(part) for part in error["loc"])
                errors.append((trigger, path, error["msg"]))
    if errors:
        raise KwargsValidationError(instance, errors)
    return result


def filter_kwargs(instance: str, trigger_kwargs: Mapping[str, Any], spec: Mapping[str, Mapping[str, Any]]) -> Any:
    """The original framework's ``context.filter_kwargs``: each trigger's
    kwargs run through a ``FilterMapper`` of ``spec[trigger]`` (the Filters
    library, ``pip install 'celery-triggers[filters]'``), missing and extra
    keys allowed as in the original. Returns the cleaned data; raises one
    :class:`KwargsValidationError` naming every invalid field."""
    try:
        import filters as f
    except ImportError as exc:
        raise ImportError("filter_kwargs needs the Filters library: pip install 'celery-triggers[filters]'") from exc

    inner = {trigger: f.Optional(default={}) | f.FilterMapper(dict(spec_)) for trigger, spec_ in spec.items()}
    runner = f.FilterRunner(
        f.FilterMapper(inner, allow_missing_keys=True, allow_extra_keys=True), dict(trigger_kwargs or {})
    )
    if not runner.is_valid():
        errors = []
        for key, problems in sorted(runner.errors.items()):
            trigger, _, path = str(key).partition(".")
            for problem in problems:
                errors.append((trigger, path, str(problem.get("message") or problem.get("code"))))
        raise KwargsValidationError(instance, errors)
    return runner.cleaned_data
