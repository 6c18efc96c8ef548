"""runio.reading: JSON / YAML / text reading that turns every parse failure into one line (JsonError or an
InputError naming the file) — properties over arbitrary text and values, and the inputs that used to raise
RecursionError, OverflowError or UnicodeDecodeError."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runio.reading import MAX_DEPTH, JsonError, check_depth, loads_json, read_json_file, read_text, read_yaml_file
from theory.errors import InputError

JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                           | st.text(), lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_parses_or_is_one_json_error(text):
    try:
        loads_json(text)
    except JsonError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=200, deadline=None)
@given(JSON_VALUES)
def test_strict_json_round_trips(value):
    assert loads_json(json.dumps(value, allow_nan=False)) == value


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=3 * MAX_DEPTH), st.sampled_from(["list", "object"]))
def test_depth_is_refused_exactly_beyond_the_limit(depth, kind):
    text = _nested(depth, kind)
    if depth <= MAX_DEPTH:
        assert check_depth(loads_json(text)) is not None
    else:
        with pytest.raises(JsonError, match=f"nested more than {MAX_DEPTH} levels deep"):
            loads_json(text)


def _nested(depth: int, kind: str) -> str:
    """``depth`` nested lists, or objects {"a": ...}, around 0."""
    if kind == "list":
        return "[" * depth + "0" + "]" * depth
    return '{"a": ' * depth + "0" + "}" * depth


@pytest.mark.parametrize("text, match", [
    ("[" * 100_000 + "]" * 100_000, "nested more than"),  # json itself: RecursionError
    ("1" + "0" * 400, "(401 digits) is too large"),  # 10**400: OverflowError once used as a float
    ("1" + "0" * 5000, "(5001 digits) is too large"),  # int(): ValueError beyond 4300 digits
    ("[1e999]", "the number 1e999 is too large"),
    ('{"score": NaN}', "NaN is not a JSON number"),
    ("-Infinity", "-Infinity is not a JSON number"),
    ("{oops", "Expecting property name enclosed in double quotes at line 1 column 2"),
    (b'"\xff"', "not UTF-8"),
])
def test_inputs_that_used_to_raise(text, match):
    with pytest.raises(JsonError, match=match.replace("(", r"\(").replace(")", r"\)")):
        loads_json(text)


def test_allow_nan_keeps_non_finite_floats_for_the_caller_to_report():
    values = loads_json("[NaN, Infinity, 1e999]", allow_nan=True)
    assert values[1] == values[2] == float("inf") and values[0] != values[0]
    with pytest.raises(JsonError, match="too large"):
        loads_json("[1" + "0" * 400 + "]", allow_nan=True)


def test_files_name_themselves(tmp_path):
    path = tmp_path / "f.json"
    with pytest.raises(InputError, match=f"thing {path} does not exist"):
        read_json_file(path, "thing")
    with pytest.raises(InputError, match="is a directory"):
        read_text(tmp_path, "thing")
    path.write_bytes(b'{"a": "caf\xe9"}')
    with pytest.raises(InputError, match=f"thing {path} is not UTF-8 text \\(byte 11: invalid continuation byte\\)"):
        read_json_file(path, "thing")
    path.write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(InputError, match=f"thing {path} is not valid JSON \\(nested more than"):
        read_json_file(path, "thing")
    path.write_text('{"a": [1, 2]}')
    assert read_json_file(path, "thing") == {"a": [1, 2]}


def test_yaml_nested_5000_deep_and_aliases(tmp_path):
    path = tmp_path / "q.yaml"
    path.write_text("- " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(InputError, match=f"question file {path} is not valid YAML: nested more than"):
        read_yaml_file(path, "question file")
    path.write_text("a: &x [1, 2]\nb: [*x, *x, *x]\n")  # shared through aliases: walked once, fine
    assert read_yaml_file(path) == {"a": [1, 2], "b": [[1, 2]] * 3}
    path.write_text("a: [1, 2\n")
    with pytest.raises(InputError, match="is not valid YAML"):
        read_yaml_file(path)
