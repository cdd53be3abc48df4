"""Config parsing: directives, aliases, extras, and clear typed errors."""

from __future__ import annotations

from typing import Any

import pytest

from celery_triggers import ConfigurationError
from celery_triggers.core.config import TaskConfig, parse_config, parse_configs


def test_seed_format_parses_to_an_immutable_config() -> None:
    config = parse_config(
        "t_createApplicant", {"after": ["startSession", "observationsReceived"], "run": "proj.create"}
    )
    assert config.after == ("startSession", "observationsReceived")
    assert config.run == "proj.create"
    assert config.and_every is None and config.unless == ()
    with pytest.raises(AttributeError):
        config.run = "other"  # type: ignore[misc]


def test_camel_and_snake_case_aliases_are_equivalent() -> None:
    camel = parse_config("t", {"after": ["a"], "run": "r", "andEvery": "p", "withParams": {"s": {"m": 1}}})
    snake = parse_config("t", {"after": ["a"], "run": "r", "and_every": "p", "with_params": {"s": {"m": 1}}})
    assert camel == snake
    assert camel.required == {"a", "p"}


def test_a_config_built_directly_is_validated_normalised_and_hashable() -> None:
    direct = TaskConfig(name="t", run="r", after=("a", "b"), with_params={"a": {"m": 1}}, extras={"x": 1})
    parsed = parse_config("t", {"after": ["a", "b"], "run": "r", "withParams": {"a": {"m": 1}}, "x": 1})
    assert direct == parsed and hash(direct) == hash(parsed) and len({direct, parsed}) == 1
    assert direct.after == ("a", "b")
    with pytest.raises(TypeError):
        direct.with_params["a"]["m"] = 2  # type: ignore[index]  # read-only views
    assert hash(direct) != hash(parse_config("t", {"after": ["a", "b"], "run": "r"}))


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"name": "", "run": "r", "after": ["a"]}, "non-empty string"),
        ({"name": "t", "run": 3, "after": ["a"]}, "directive 'run'"),
        ({"name": "t", "run": "r"}, "at least one trigger"),
        ({"name": "t", "run": "r", "after": "a"}, "list of trigger names"),
        ({"name": "t", "run": "r", "after": ["a"], "unless": [""]}, "directive 'unless'"),
        ({"name": "t", "run": "r", "after": ["a"], "with_params": {"a": 1}}, "dict of dicts"),
        ({"name": "t", "run": "r", "after": ["a"], "using": 5}, "runner name"),
        ({"name": "t", "run": "r", "after": ["a"], "extras": {"x": object()}}, "custom directives"),
    ],
)
def test_a_config_built_directly_refuses_bad_fields(fields: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        TaskConfig(**fields)


def test_unknown_keys_are_custom_directives_kept_as_extras() -> None:
    config = parse_config("t", {"after": ["a"], "run": "r", "finalizes": True, "priority": 3})
    assert dict(config.extras) == {"finalizes": True, "priority": 3}
    assert config.to_dict()["finalizes"] is True


def test_after_accepts_a_set_in_any_order() -> None:
    assert parse_config("t", {"after": {"b", "a"}, "run": "r"}).required == {"a", "b"}


@pytest.mark.parametrize(
    ("directives", "fragment"),
    [
        ({"after": ["a"]}, "missing required directive 'run'"),
        ({"after": ["a"], "run": 3}, "directive 'run'"),
        ({"after": "a", "run": "r"}, "directive 'after': expected a list of trigger names, got str"),
        ({"after": ["a", 7], "run": "r"}, "directive 'after'"),
        ({"after": [None], "run": "r"}, "directive 'after'"),
        ({"after": {"a": 1}, "run": "r"}, "directive 'after'"),
        ({"after": [], "run": "r"}, "directive 'after'"),
        (
            {"after": ["a"], "run": "r", "andevery": "x"},
            "directive 'andevery': unknown directive; did you mean 'andEvery'",
        ),
        ({"after": ["a"], "run": "r", "With_Params": {}}, "directive 'With_Params': unknown directive; did you mean"),
        ({"after": ["a"], "run": "r", "RUN": "x"}, "directive 'RUN'"),
        ({"after": ["a"], "run": "r", "unles": ["x"]}, "directive 'unles': unknown directive; did you mean 'unless'"),
        ({"run": "r", "afer": ["a"]}, "directive 'afer': unknown directive; did you mean 'after'"),
        ({"after": ["a"], "run": "r", "andEvry": "x"}, "did you mean 'andEvery' or 'and_every'"),
        ({"after": ["a"], "run": "r", "withParam": {}}, "did you mean 'withParams' or 'with_params'"),
        ({"after": ["a"], "run": "r", "withParams": {"model": "Psych 01"}}, "must be a dict of dicts"),
        ({"after": ["a"], "run": "r", "withParams": {"s": {"when": object()}}}, "JSON-serializable"),
        ({"after": ["a"], "run": "r", "unless": "x"}, "directive 'unless'"),
        ({"after": ["a"], "run": "r", "andEvery": ["x"]}, "directive 'andEvery'"),
        ({"after": ["a"], "run": "r", "custom": {1, 2}}, "custom directives must be JSON-serializable"),
        ({"after": ["a"], "run": "r", "andEvery": "p", "and_every": "q"}, "given twice"),
    ],
)
def test_bad_configs_name_the_task_and_directive(directives: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_config("t_bad", directives)
    assert "trigger task 't_bad'" in str(info.value)
    assert fragment in str(info.value)
    assert info.value.task == "t_bad"


def test_custom_directives_far_from_any_directive_are_kept() -> None:
    config = parse_config("t_x", {"after": ["a"], "run": "r", "priority": 3, "owner": "ops", "queue": "q"})
    assert dict(config.extras) == {"priority": 3, "owner": "ops", "queue": "q"}


def test_a_whole_configuration_is_all_or_nothing() -> None:
    with pytest.raises(ConfigurationError, match="t_second"):
        parse_configs({"t_first": {"after": ["a"], "run": "r"}, "t_second": {"after": ["a"]}})
    with pytest.raises(ConfigurationError, match="mapping"):
        parse_configs(["t_first"])  # type: ignore[arg-type]


def test_the_decorator_takes_custom_directives_in_extras_and_refuses_other_keywords() -> None:
    from celery_triggers import trigger_task

    from .conftest import make_app

    app = make_app()

    @app.task(shared=False, name="typo.task")
    def task() -> None: ...

    with pytest.raises(ConfigurationError, match=r"unknown keyword\(s\) 'unles' \(did you mean 'unless'\?\)"):
        trigger_task(after=["go"], unles=["stop"])(task)
    with pytest.raises(ConfigurationError, match=r"'priority'; pass custom directives as extras=\{...\}"):
        trigger_task(after=["go"], priority=3)(task)
    assert app.triggers.configs == {}
    trigger_task(after=["go"], extras={"priority": 3})(task)
    assert dict(app.triggers.configs["t_task"].extras) == {"priority": 3}
