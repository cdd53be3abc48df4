"""Parse and validate trigger task directives into immutable task configs.

A task config reads like a sentence::

    "t_computeScore": {
        "after": ["t_createApplicant", "sessionFinalized"],
        "run": "proj.tasks.compute_score",
    }

Errors are raised when a config is declared, name the task and the directive
at fault, and never leave a half-parsed config behind.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import InitVar, dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

from .data import MAX_NAME_LENGTH, MAX_UID_LENGTH, check_json, check_text, dumps, frozen, plain
from .errors import ConfigurationError

__all__ = ["DIRECTIVES", "TaskConfig", "merge_recursive", "parse_config", "parse_configs"]

#: Canonical directive -> accepted spellings.
DIRECTIVES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "after": ("after",),
        "run": ("run",),
        "and_every": ("andEvery", "and_every"),
        "unless": ("unless",),
        "with_params": ("withParams", "with_params"),
        "using": ("using",),
        "within": ("within",),
        "on_timeout": ("onTimeout", "on_timeout"),
    }
)
_SPELLINGS = {spelling: canonical for canonical, names in DIRECTIVES.items() for spelling in names}
_NORMALIZED = {canonical.replace("_", "").lower(): canonical for canonical in DIRECTIVES}


@dataclass(frozen=True)
class TaskConfig:
    """One trigger task: when (``after``, ``and_every``, ``unless``) to run what."""

    name: str
    run: str
    after: tuple[str, ...] = ()
    and_every: str | None = None
    unless: tuple[str, ...] = ()
    with_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    using: str | None = None
    #: Seconds after an instance's creation (its first trigger) by which it
    #: must be ready; past them it is abandoned (reason: deadline).
    within: float | None = None
    #: The trigger fired when an instance's deadline passes.
    on_timeout: str | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)
    #: A config read back from a session's storage: its names were accepted
    #: when it was written (perhaps before the rule on control characters),
    #: so only their type is checked again; output escapes them.
    stored: InitVar[bool] = False

    def __post_init__(self, stored: bool) -> None:
        """Validate and normalise every field, so a config built directly
        (``TaskConfig(name=..., run=..., after=[...])``) is as checked as one
        parsed from directives: :class:`ConfigurationError` names the task
        and directive at fault. Task and trigger names follow the rules of
        a fired trigger's name (``check_text``: no control characters)."""
        name = self.name
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"a trigger task name must be a non-empty string, got {name!r}")
        problem = None if stored else check_text(name, what="a trigger task name", limit=MAX_NAME_LENGTH)
        if problem is not None:
            raise ConfigurationError(problem)
        if not isinstance(self.run, str) or not self.run:
            raise ConfigurationError(
                f"expected a Celery task name (string), got {type(self.run).__name__} {self.run!r}",
                task=name,
                directive="run",
            )
        # A Celery task name is a dotted path: generous room, but no control characters.
        problem = None if stored else check_text(self.run, what="the Celery task name", limit=MAX_UID_LENGTH)
        if problem is not None:
            raise ConfigurationError(problem, task=name, directive="run")
        after = _trigger_list(name, "after", self.after, stored)
        and_every = None if self.and_every is None else _trigger_name(name, "andEvery", self.and_every, stored)
        if not after and and_every is None:
            raise ConfigurationError(
                "needs at least one trigger in 'after' (or an 'andEvery' trigger)", task=name, directive="after"
            )
        using = self.using
        if using is not None and (not isinstance(using, str) or not using):
            raise ConfigurationError(f"expected a runner name, got {using!r}", task=name, directive="using")
        within, on_timeout = _deadline(name, self.within, self.on_timeout, stored)
        if not isinstance(self.extras, Mapping) or not all(isinstance(k, str) for k in self.extras):
            raise ConfigurationError(f"custom directives must be a dict, got {self.extras!r}", task=name)
        try:
            check_json(plain(self.extras), what="custom directives")
        except TypeError as exc:
            raise ConfigurationError(str(exc), task=name) from None
        object.__setattr__(self, "after", after)
        object.__setattr__(self, "and_every", and_every)
        object.__setattr__(self, "within", within)
        object.__setattr__(self, "on_timeout", on_timeout)
        object.__setattr__(self, "unless", _trigger_list(name, "unless", self.unless, stored))
        object.__setattr__(self, "with_params", _with_params(name, self.with_params))
        object.__setattr__(self, "extras", frozen(self.extras))

    def __hash__(self) -> int:
        return hash(
            (
                self.name,
                self.run,
                self.after,
                self.and_every,
                self.unless,
                self.using,
                self.within,
                self.on_timeout,
                dumps(plain(self.with_params)),
                dumps(plain(self.extras)),
            )
        )

    @cached_property
    def required(self) -> frozenset[str]:
        """Every trigger an instance must have consumed before it can run."""
        names = set(self.after)
        if self.and_every is not None:
            names.add(self.and_every)
        return frozenset(names)

    @cached_property
    def watched(self) -> frozenset[str]:
        """Every trigger whose firing can change this task's instances."""
        return self.required | frozenset(self.unless)

    def to_dict(self) -> dict[str, Any]:
        """The config in the seed's JSON format (camelCase directives)."""
        data: dict[str, Any] = {"after": list(self.after), "run": self.run}
        if self.and_every is not None:
            data["andEvery"] = self.and_every
        if self.unless:
            data["unless"] = list(self.unless)
        if self.with_params:
            data["withParams"] = plain(self.with_params)
        if self.using is not None:
            data["using"] = self.using
        if self.within is not None:
            data["within"] = self.within
        if self.on_timeout is not None:
            data["onTimeout"] = self.on_timeout
        data.update(plain(self.extras))
        return data


def _trigger_list(task: str, directive: str, value: Any, stored: bool = False) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise ConfigurationError(
            f"expected a list of trigger names, got {type(value).__name__} {value!r}",
            task=task,
            directive=directive,
        )
    names: list[str] = []
    for item in value:
        names.append(_trigger_name(task, directive, item, stored))
    # Order is irrelevant; keep a stable, duplicate-free order for display.
    return tuple(dict.fromkeys(sorted(names) if isinstance(value, (set, frozenset)) else names))


def _trigger_name(task: str, directive: str, value: Any, stored: bool = False) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(
            f"expected a non-empty trigger name (string), got {type(value).__name__} {value!r}",
            task=task,
            directive=directive,
        )
    problem = None if stored else check_text(value, what="a trigger name", limit=MAX_NAME_LENGTH)
    if problem is not None:
        raise ConfigurationError(problem, task=task, directive=directive)
    return value


def _deadline(task: str, within: Any, on_timeout: Any, stored: bool) -> tuple[float | None, str | None]:
    """``within`` (seconds, a number > 0) and ``on_timeout`` (a trigger
    name, only with ``within``), checked."""
    if within is not None:
        if isinstance(within, bool) or not isinstance(within, (int, float)):
            raise ConfigurationError(
                f"expected a number of seconds, got {type(within).__name__} {within!r}", task=task, directive="within"
            )
        if not math.isfinite(within) or within <= 0:
            raise ConfigurationError(f"expected a number of seconds > 0, got {within!r}", task=task, directive="within")
        within = float(within)
    if on_timeout is not None:
        if within is None:
            raise ConfigurationError(
                "needs 'within' (the seconds after which the trigger fires)", task=task, directive="onTimeout"
            )
        on_timeout = _trigger_name(task, "onTimeout", on_timeout, stored)
    return within, on_timeout


def _with_params(task: str, value: Any) -> Mapping[str, Mapping[str, Any]]:
    directive = "withParams"
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"expected a dict of dicts, got {type(value).__name__}", task=task, directive=directive
        )
    params: dict[str, Mapping[str, Any]] = {}
    for key, sub in value.items():
        if not isinstance(key, str) or not isinstance(sub, Mapping):
            raise ConfigurationError(
                f"must be a dict of dicts like {{'scoring': {{'model': 'Psych 01'}}}}; "
                f"{key!r} maps to {type(sub).__name__} {sub!r}",
                task=task,
                directive=directive,
            )
        try:
            check_json(plain(sub), what=f"withParams[{key!r}]")
        except TypeError as exc:
            raise ConfigurationError(str(exc), task=task, directive=directive) from None
        params[key] = frozen(sub)  # read-only at every depth, shared with no caller
    return MappingProxyType(params)


def _distance(a: str, b: str) -> int:
    """Levenshtein distance (short strings: directive names)."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _near_name(name: str, known: Iterable[str]) -> str | None:
    best: tuple[int, str] | None = None
    for candidate in known:
        allowed = min(2, (min(len(candidate), len(name)) - 1) // 3)
        if allowed and abs(len(candidate) - len(name)) <= allowed:
            distance = _distance(name, candidate)
            if distance <= allowed and (best is None or (distance, candidate) < best):
                best = (distance, candidate)
    return None if best is None else best[1]


def _near_directive(key: str) -> str | None:
    """The directive ``key`` is probably a typo of: the same but for case and
    underscores, or within edit distance 2 (1 for the three-letter ``run``)."""
    normalized = key.replace("_", "").lower()
    if normalized in _NORMALIZED:
        return _NORMALIZED[normalized]
    for candidate, canonical in _NORMALIZED.items():
        if _distance(normalized, candidate) <= (1 if len(candidate) <= 3 else 2):
            return canonical
    return None


def parse_config(name: str, directives: Mapping[str, Any], *, stored: bool = False) -> TaskConfig:
    """Build a :class:`TaskConfig` from the seed's directive mapping.

    Raises :class:`ConfigurationError` naming the task and directive at fault.
    Unknown keys become custom directives (``config.extras``), except keys that
    differ from a known directive only by case or underscores, or by at most
    two edits (``unles``, ``afer``, ``andEvry``, ``withParam``), which are
    almost certainly typos. ``stored``: read back from a session's storage
    (see :class:`TaskConfig`).
    """
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"a trigger task name must be a non-empty string, got {name!r}")
    if not isinstance(directives, Mapping):
        raise ConfigurationError(f"expected a mapping of directives, got {type(directives).__name__}", task=name)
    values: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    for key, value in directives.items():
        if not isinstance(key, str):
            raise ConfigurationError(f"directive names must be strings, got {key!r}", task=name)
        canonical = _SPELLINGS.get(key)
        if canonical is None:
            near = _near_directive(key)
            if near is not None:
                spellings = " or ".join(repr(s) for s in DIRECTIVES[near])
                raise ConfigurationError(f"unknown directive; did you mean {spellings}?", task=name, directive=key)
            extras[key] = value
            continue
        if canonical in values:
            raise ConfigurationError("directive given twice (camelCase and snake_case)", task=name, directive=key)
        values[canonical] = value

    if "run" not in values:
        raise ConfigurationError(
            "missing required directive 'run' (the Celery task name to run)", task=name, directive="run"
        )
    return TaskConfig(
        name=name,
        run=values["run"],
        after=values.get("after", ()),
        and_every=values.get("and_every"),
        unless=values.get("unless", ()),
        with_params=values.get("with_params", {}),
        using=values.get("using"),
        within=values.get("within"),
        on_timeout=values.get("on_timeout"),
        extras=extras,
        stored=stored,
    )


def parse_configs(mapping: Mapping[str, Any], *, stored: bool = False) -> dict[str, TaskConfig]:
    """Parse a whole configuration (task name -> directives); all or nothing."""
    if not isinstance(mapping, Mapping):
        raise ConfigurationError(
            f"a configuration is a mapping of task name -> directives, got {type(mapping).__name__}"
        )
    return {name: parse_config(name, directives, stored=stored) for name, directives in mapping.items()}


class Configuration(Mapping[str, TaskConfig]):
    """An immutable set of task configs with an index from each trigger to
    the tasks that watch it (so a fire looks at those tasks only)."""

    def __init__(self, configs: Mapping[str, TaskConfig] | None = None):
        self._configs = dict(configs or {})
        watchers: dict[str, list[TaskConfig]] = {}
        for name in sorted(self._configs):
            for trigger in self._configs[name].watched:
                watchers.setdefault(trigger, []).append(self._configs[name])
        self.watchers: Mapping[str, tuple[TaskConfig, ...]] = {t: tuple(c) for t, c in watchers.items()}
        self._near: dict[str, str | None] = {}

    def near_trigger(self, name: str) -> str | None:
        """The watched trigger that ``name``, watched by no task, is probably
        a typo of (within two edits; one for names under 7 characters, none
        under 4), else None. Remembered per name: a fire of a known trigger
        costs one dict lookup."""
        if name in self.watchers:
            return None
        if name not in self._near:
            if len(self._near) > 1024:
                self._near.clear()
            self._near[name] = _near_name(name, self.watchers)
        return self._near[name]

    def __getitem__(self, name: str) -> TaskConfig:
        return self._configs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._configs)

    def __len__(self) -> int:
        return len(self._configs)

    def __repr__(self) -> str:
        return f"Configuration({sorted(self._configs)})"


def merge_recursive(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` merged into ``base`` key by key at every depth (the
    original framework's ``merge_dict``): nested mappings merge, anything
    else (lists included) is replaced by ``override``'s value.

    The result is new plain data (``dict`` and ``list`` at every depth,
    whatever read-only views the inputs hold) sharing nothing with either
    input: changing it changes neither."""
    merged: dict[str, Any] = {}
    for key, value in base.items():
        if key not in override:
            merged[key] = plain(value)
        elif isinstance(value, Mapping) and isinstance(override[key], Mapping):
            merged[key] = merge_recursive(value, override[key])
        else:
            merged[key] = plain(override[key])
    for key, value in override.items():
        if key not in merged:
            merged[key] = plain(value)
    return merged
