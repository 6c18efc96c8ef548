"""theory.judging: the logprob-weighted single-token score and the digit-sequence score (properties)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theory.errors import InputError
from theory.judging import (NUMBER_SPELLINGS, digit_path_probabilities, digit_prefixes, digit_sequence_score,
                            logprob_score, number_of, special_of)

numbers = st.integers(min_value=0, max_value=100)
weights = st.floats(min_value=1e-3, max_value=1.0)
number_dists = st.dictionaries(numbers, weights, min_size=1, max_size=20)
junk_tokens = st.sampled_from(["the", " I", "\n", "101", "-3", "7.5", "abc", "²", "1000", " yes"])


def normalised(dist: dict, total: float) -> dict:
    scale = total / sum(dist.values())
    return {k: v * scale for k, v in dist.items()}


def as_logprobs(probs: dict) -> dict[str, float]:
    return {str(k): math.log(p) for k, p in probs.items()}


def test_hand_computation():
    result = logprob_score({"80": math.log(0.5), "90": math.log(0.3), " 70": math.log(0.1), "x": math.log(0.1)})
    assert result.label == "score"
    assert result.numeric_mass == pytest.approx(0.9)
    assert result.score == pytest.approx((80 * 0.5 + 90 * 0.3 + 70 * 0.1) / 0.9)


@given(number_dists, st.floats(min_value=0.3, max_value=1.0))
def test_weighted_mean_and_range(dist, total):
    probs = normalised(dist, total)
    result = logprob_score(as_logprobs(probs))
    expected = sum(k * p for k, p in probs.items()) / sum(probs.values())
    assert result.label == "score"
    assert result.score == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert 0.0 <= result.score <= 100.0
    assert result.numeric_mass == pytest.approx(total)


@given(number_dists, st.dictionaries(junk_tokens, st.floats(min_value=1e-4, max_value=0.5), max_size=5))
def test_non_number_tokens_change_only_the_mass(dist, junk):
    probs = normalised(dist, 0.5)
    base = logprob_score(as_logprobs(probs), min_mass=0.0)
    with_junk = logprob_score({**as_logprobs(probs), **{t: math.log(p) for t, p in junk.items()}}, min_mass=0.0)
    assert with_junk.score == pytest.approx(base.score, rel=1e-12)
    assert with_junk.numeric_mass == pytest.approx(base.numeric_mass, rel=1e-12)


@given(number_dists, st.floats(min_value=0.01, max_value=1.0), st.floats(min_value=0.0, max_value=1.0))
def test_mass_threshold(dist, total, min_mass):
    result = logprob_score({**as_logprobs(normalised(dist, total)), "no": math.log(max(1e-9, 1 - total))},
                           min_mass=min_mass)
    assert (result.label == "score") == (result.numeric_mass >= min_mass)
    assert (result.score is None) == (result.label == "no_score")


def test_special_answers():
    refusal = logprob_score({"REFUSAL": math.log(0.6), "50": math.log(0.3)})
    assert (refusal.label, refusal.score) == ("REFUSAL", None)
    assert refusal.numeric_mass == pytest.approx(0.3)
    assert logprob_score({" code": math.log(0.5), "CODE": math.log(0.2), "10": math.log(0.25)}).label == "CODE"
    assert logprob_score({"REF": math.log(0.6), "0": math.log(0.4)}).label == "REFUSAL"  # split "REF"+"USAL"
    assert logprob_score({"REFUSAL": math.log(0.3), "50": math.log(0.6)}).label == "score"  # numbers win
    assert [special_of(t) for t in ("Refusal", "CO", "CODEX", "hello")] == ["REFUSAL", None, "CODE", None]


def test_number_tokens():
    assert [number_of(t) for t in ("0", " 100", "\n42", "101", "-1", "4.0", "²", "")] == [0, 100, 42, None, None,
                                                                                         None, None, None]
    with pytest.raises(InputError):
        logprob_score({"5": float("nan")})
    assert logprob_score({}).label == "no_score"


def digit_tree(probs: dict[int, float]) -> dict[str, dict[str, float]]:
    """The conditional digit distributions of a joint over the numbers (the rest of the mass is non-numeric):
    q(d | s) = M(s d) / M(s) with M(s) the mass of numbers spelled with prefix s (M("") = 1)."""
    def mass(prefix: str) -> float:
        return 1.0 if prefix == "" else sum(p for n, p in probs.items() if str(n).startswith(prefix))

    prefixes = {""} | {s[:i] for s in NUMBER_SPELLINGS for i in range(1, len(s) + 1)}
    return {s: {d: (mass(s + d) / mass(s) if mass(s) > 0 else 0.0) for d in "0123456789"
                if (s + d) in {x[:len(s) + 1] for x in NUMBER_SPELLINGS}} for s in prefixes}


@settings(max_examples=40, deadline=None)
@given(number_dists, st.floats(min_value=0.3, max_value=1.0))
def test_digit_sequence_equals_single_token_when_the_distributions_agree(dist, total):
    probs = normalised(dist, total)
    single = logprob_score({**as_logprobs(probs), "word": math.log(max(1e-12, 1 - total))})
    tree = digit_tree(probs)
    sequence = digit_sequence_score(tree)
    assert sequence.label == single.label == "score"
    assert sequence.score == pytest.approx(single.score, rel=1e-9, abs=1e-9)
    assert sequence.numeric_mass == pytest.approx(single.numeric_mass, rel=1e-9)
    assert digit_sequence_score(tree.get).score == pytest.approx(sequence.score)  # callable form
    assert digit_prefixes(tree) == []


def test_digit_sequence_hand_computation_and_pruning():
    # first token "4" (0.5) or "1" (0.2); after "4": "2" (0.6) else end; after "42": end; after "1": "0" (1.0) ...
    tree = {"": {"4": 0.5, "1": 0.2}, "4": {"2": 0.6}, "42": {}, "1": {"0": 1.0}, "10": {"0": 0.5}, "100": {}}
    result = digit_sequence_score(tree, min_mass=0.0)
    p = {4: 0.5 * 0.4, 42: 0.5 * 0.6, 10: 0.2 * 0.5, 100: 0.2 * 0.5}
    assert result.numeric_mass == pytest.approx(sum(p.values()))
    assert result.score == pytest.approx(sum(n * q for n, q in p.items()) / sum(p.values()))
    assert digit_prefixes({"": {"4": 0.5, "1": 1e-6}}, prune_below=1e-4) == ["4"]
    assert len(digit_prefixes({"": {d: 0.1 for d in "0123456789"}})) == 10
    assert set(digit_path_probabilities({"": {"1": 1.0}, "1": {"0": 1.0}, "10": {"0": 1.0}})) >= {"100"}
    refused = digit_sequence_score({"": {"5": 0.1}, "5": {}}, specials={"REFUSAL": 0.7, "CODE": 0.0})
    assert refused.label == "REFUSAL"
    assert digit_sequence_score({"": {"5": 0.1}, "5": {}}).label == "no_score"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=10, max_size=10), st.integers(0, 2**31 - 1))
def test_digit_sequence_score_in_range(first, seed):
    import random

    rng = random.Random(seed)
    scale = sum(first) + rng.random() + 1e-9

    def q(prefix: str) -> dict[str, float]:
        if prefix == "":
            return {d: f / scale for d, f in zip("0123456789", first)}
        raw = [rng.random() for _ in range(10)]
        total = sum(raw) + rng.random() + 1e-9
        return {d: r / total for d, r in zip("0123456789", raw)}

    memo: dict[str, dict] = {}
    result = digit_sequence_score(lambda s: memo.setdefault(s, q(s)), min_mass=0.0)
    assert 0.0 <= result.numeric_mass <= 1.0 + 1e-9
    assert result.label == "no_score" or 0.0 <= result.score <= 100.0
