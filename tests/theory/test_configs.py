"""theory.configs: strict_from_dict builds frozen (nested) dataclasses, refuses unknown keys, wrong types,
NaN and values outside a Literal with an InputError naming the dotted key; to_dict round-trips; merge."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from theory.configs import merge, strict_from_dict, to_dict
from theory.errors import InputError


@dataclass(frozen=True)
class Inner:
    width: int = 4
    rate: float = 0.1
    mode: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Outer:
    name: str = "run"
    inner: Inner = field(default_factory=Inner)
    seeds: tuple[int, ...] = (0,)
    labels: list[str] = field(default_factory=list)
    limit: float | None = None
    flag: bool = False


inners = st.builds(Inner, width=st.integers(-10**6, 10**6), rate=st.floats(allow_nan=False),
                   mode=st.sampled_from(["a", "b"]))
outers = st.builds(Outer, name=st.text(max_size=10), inner=inners, seeds=st.lists(st.integers(0, 99)).map(tuple),
                   labels=st.lists(st.text(max_size=5), max_size=3),
                   limit=st.none() | st.floats(allow_nan=False), flag=st.booleans())


@given(outers)
def test_round_trip(cfg):
    rebuilt = strict_from_dict(Outer, to_dict(cfg))
    assert rebuilt == cfg
    assert isinstance(rebuilt.inner, Inner) and isinstance(rebuilt.seeds, tuple) and isinstance(rebuilt.labels, list)


def test_defaults_and_coercions():
    assert strict_from_dict(Outer, {}) == Outer()
    cfg = strict_from_dict(Outer, {"inner": {"width": 3.0, "rate": 2, "mode": "b"}, "seeds": [1, 2], "limit": 5})
    assert cfg.inner == Inner(width=3, rate=2.0, mode="b")
    assert type(cfg.inner.width) is int and type(cfg.inner.rate) is float and type(cfg.limit) is float
    assert cfg.seeds == (1, 2)
    assert strict_from_dict(Outer, {"limit": None}).limit is None


@pytest.mark.parametrize("data, key", [
    ({"bogus": 1}, "bogus"),
    ({"inner": {"bogus": 1}}, "inner.bogus"),
])
def test_unknown_keys_are_refused(data, key):
    with pytest.raises(InputError, match=f"unknown config key '{key}'"):
        strict_from_dict(Outer, data)


@pytest.mark.parametrize("data, key", [
    ({"name": 3}, "name"),
    ({"flag": 1}, "flag"),
    ({"flag": "true"}, "flag"),
    ({"inner": 3}, "inner"),
    ({"inner": {"width": "4"}}, "inner.width"),
    ({"inner": {"width": True}}, "inner.width"),
    ({"inner": {"width": 2.5}}, "inner.width"),
    ({"inner": {"rate": "0.1"}}, "inner.rate"),
    ({"inner": {"rate": True}}, "inner.rate"),
    ({"inner": {"rate": float("nan")}}, "inner.rate"),
    ({"limit": float("nan")}, "limit"),
    ({"limit": "x"}, "limit"),
    ({"inner": {"mode": "c"}}, "inner.mode"),
    ({"seeds": 5}, "seeds"),
    ({"seeds": [1, "a"]}, r"seeds\[1\]"),
    ({"labels": [1]}, r"labels\[0\]"),
])
def test_wrong_values_are_refused_naming_the_key(data, key):
    with pytest.raises(InputError, match=f"'{key}'") as info:
        strict_from_dict(Outer, data)
    assert "\n" not in str(info.value)


def test_nan_message_and_literal_choices():
    with pytest.raises(InputError, match="NaN"):
        strict_from_dict(Inner, {"rate": math.nan})
    with pytest.raises(InputError, match=r"one of \['a', 'b'\]"):
        strict_from_dict(Inner, {"mode": "A"})


def test_merge():
    base = {"a": 1, "nested": {"x": 1, "y": 2}, "keep": {"z": 3}}
    out = merge(base, {"a": None, "nested": {"y": 20, "w": 4}, "new": 5, "keep": 7})
    assert out == {"a": 1, "nested": {"x": 1, "y": 20, "w": 4}, "keep": 7, "new": 5}
    assert base == {"a": 1, "nested": {"x": 1, "y": 2}, "keep": {"z": 3}}  # not mutated
