"""JSON with and without orjson: the same verdicts and the same values.

``celery_triggers.core.data`` encodes with orjson when it is installed (the
``fast`` extra) and with the json module otherwise; what a user can store,
what is refused and what is read back must not depend on which."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from celery_triggers.core import data as _json
from celery_triggers.core.errors import InvalidKwargs

pytestmark = pytest.mark.skipif(_json.orjson is None, reason="compares orjson with the json module")

leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def _outcome(fn: Any, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        return type(exc).__name__, None


def _without_orjson(monkeypatch: pytest.MonkeyPatch, fn: Any, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    with monkeypatch.context() as patch:
        patch.setattr(_json, "orjson", None)
        return _outcome(fn, *args, **kwargs)


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN included, and of the same types (1 is not 1.0)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@settings(max_examples=300, deadline=None)
@given(values)
def test_dumps_and_loads_agree_with_the_json_module(value: Any) -> None:
    monkeypatch = pytest.MonkeyPatch()
    fast = _outcome(_json.dumps, value)
    plain = _without_orjson(monkeypatch, _json.dumps, value)
    assert fast[0] == plain[0], (value, fast, plain)  # both refuse (NaN, infinities) or both accept
    if fast[0] == "ok":
        assert _same(json.loads(fast[1]), json.loads(plain[1]))
        assert _same(_json.loads(fast[1]), json.loads(plain[1]))  # read back exactly, big integers included
        assert _same(_json.loads(plain[1].encode()), json.loads(plain[1]))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), values, max_size=4), st.integers(min_value=2, max_value=400))
def test_kwargs_are_checked_and_sized_alike(kwargs: dict[str, Any], limit: int) -> None:
    monkeypatch = pytest.MonkeyPatch()

    def normalize() -> Any:
        try:
            return _json.normalize_kwargs(kwargs, what="t", max_bytes=limit)
        except InvalidKwargs as exc:
            raise ValueError(str(exc)) from None

    fast = _outcome(normalize)
    plain = _without_orjson(monkeypatch, normalize)
    assert fast[0] == plain[0], (kwargs, limit, fast, plain)
    if fast[0] == "ok":
        assert _same(fast[1], plain[1])


class Colour(enum.Enum):
    RED = 1


@dataclasses.dataclass
class Point:
    x: int


@pytest.mark.parametrize(
    "value",
    [uuid.uuid4(), Colour.RED, Point(1), datetime.datetime(2026, 1, 1), datetime.date(2026, 1, 1), {1, 2}, b"x"],
    ids=["uuid", "enum", "dataclass", "datetime", "date", "set", "bytes"],
)
def test_what_orjson_would_encode_but_json_refuses_is_refused_in_kwargs(value: Any) -> None:
    """orjson encodes UUIDs, enums, dataclasses and dates; kwargs holding one
    are refused as without it, naming the type and where it is."""
    with pytest.raises(InvalidKwargs, match=f"Object of type {type(value).__name__} is not JSON serializable.*a.b"):
        _json.normalize_kwargs({"a": {"b": value}}, what="trigger 't'")
    with pytest.raises(TypeError, match="JSON-serializable"):
        _json.check_json({"a": value}, what="custom directives")


def test_non_ascii_is_sized_as_the_json_module_writes_it() -> None:
    """``triggers_max_kwargs_bytes`` counts the json module's escaped text
    (``\\u00e9`` is 6 bytes), with or without orjson."""
    kwargs = {"name": "é" * 10}
    size = len(json.dumps(kwargs, separators=(",", ":")))
    assert _json.normalize_kwargs(kwargs, what="t", max_bytes=size) == kwargs
    with pytest.raises(InvalidKwargs, match=f"{size} bytes"):
        _json.normalize_kwargs(kwargs, what="t", max_bytes=size - 1)
