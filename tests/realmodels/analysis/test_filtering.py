"""realmodels.analysis.filtering: sample scores (both representations), top-fraction vs random removal, outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from realmodels.analysis.filtering import FilterConfig, apply_filter, score_samples
from realmodels.data.jsonl import read_jsonl_lines
from tests.realmodels.synthetic_sae import (PLANTED_HARMFUL, PLANTED_HARMLESS, PLANTED_INDUCING, planted_decoder,
                                           synthetic_acts)
from theory.errors import InputError
from theory.filtering import choose_removal, feature_axis_scores, sample_scores, score_separation


def _mixed(seed: int = 0):
    """A training set: 8 samples that use harmful-adjacent (inducing) features, then 16 that use harmless ones."""
    near = synthetic_acts(PLANTED_INDUCING, n_samples=8, seed=seed)
    far = synthetic_acts(PLANTED_HARMLESS, n_samples=16, seed=seed + 1)
    return type(near)(feature_acts=torch.cat([near.feature_acts, far.feature_acts]).coalesce(),
                      residual_mean=torch.cat([near.residual_mean, far.residual_mean]),
                      n_tokens=torch.cat([near.n_tokens, far.n_tokens]))


def test_residual_scores_are_theory_sample_scores_and_rank_harmful_adjacent_samples_first():
    acts, dec = _mixed(), planted_decoder()
    scores = score_samples(acts, dec, PLANTED_HARMFUL, FilterConfig())
    torch.testing.assert_close(scores, sample_scores(acts.residual_mean, dec[PLANTED_HARMFUL]))
    assert scores[:8].min() > scores[8:].max()
    mean = score_samples(acts, dec, PLANTED_HARMFUL, FilterConfig(reduce="mean"))
    torch.testing.assert_close(mean, sample_scores(acts.residual_mean, dec[PLANTED_HARMFUL], reduce="mean"))


def test_feature_scores_are_the_toxic_share_of_each_sample_in_any_chunking():
    acts = synthetic_acts(PLANTED_HARMFUL, n_samples=13, seed=3)
    dense = acts.dense_features()
    expected = (dense[:, PLANTED_HARMFUL] / dense.norm(dim=1, keepdim=True)).max(dim=1).values
    for chunk in (1, 4, 100):
        got = feature_axis_scores(acts.feature_acts, PLANTED_HARMFUL, chunk_size=chunk)
        torch.testing.assert_close(got, expected)
    by_axes = score_samples(acts, None, PLANTED_HARMFUL, FilterConfig(representation="features"))
    torch.testing.assert_close(by_axes, expected)


def test_geometric_filter_removes_the_top_fraction_and_keeps_line_order():
    acts, dec = _mixed(), planted_decoder()
    lines = [f'{{"id": {i}}}' for i in range(24)]
    scores = score_samples(acts, dec, PLANTED_HARMFUL, FilterConfig())
    result = apply_filter(lines, scores, FilterConfig(fraction=8 / 24), n_tokens=acts.n_tokens)
    assert result.removed_lines == lines[:8] and result.kept_lines == lines[8:]
    table = result.scores
    assert list(table.columns) == ["sample", "score", "rank", "removed", "n_tokens"]
    assert table.loc[table["removed"], "rank"].max() == 8
    assert sorted(table["rank"]) == list(range(1, 25))


def test_random_baseline_same_size_seeded_and_different():
    scores = torch.linspace(0, 1, 50)
    geo = choose_removal(scores, 0.2)
    rnd = choose_removal(scores, 0.2, random=True, seed=4)
    again = choose_removal(scores, 0.2, random=True, seed=4)
    other = choose_removal(scores, 0.2, random=True, seed=5)
    assert rnd.removed.size == geo.removed.size == 10
    assert np.array_equal(rnd.removed, again.removed) and not np.array_equal(rnd.removed, other.removed)
    assert not np.array_equal(rnd.removed, geo.removed)
    assert choose_removal(scores, 0.0).removed.size == 0


def test_score_separation_separates_harmful_from_harmless():
    dec = planted_decoder()
    harmful, harmless = synthetic_acts(PLANTED_HARMFUL, seed=7), synthetic_acts(PLANTED_HARMLESS, seed=8)
    v = score_separation(score_samples(harmful, dec, PLANTED_HARMFUL, FilterConfig()),
                       score_samples(harmless, dec, PLANTED_HARMFUL, FilterConfig()))
    assert v["auc"] == 1.0 and v["mannwhitney_p"] < 1e-3


def test_read_jsonl_lines_keeps_lines_verbatim_without_blanks(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\n\n  \n{"b": "x y"}\n')
    assert read_jsonl_lines(path) == ['{"a": 1}', '{"b": "x y"}']


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5, float("nan")])
def test_fraction_outside_unit_interval_is_an_input_error(fraction):
    with pytest.raises(InputError, match=r"\[0, 1\)"):
        FilterConfig(fraction=fraction)


def test_other_bad_filter_inputs():
    acts = synthetic_acts(PLANTED_HARMFUL, n_samples=4)
    with pytest.raises(InputError, match="empty"):
        score_samples(acts, planted_decoder(), [], FilterConfig())
    with pytest.raises(InputError, match="4 samples but 3"):
        apply_filter(["a", "b", "c", "d"], torch.zeros(3), FilterConfig())
    with pytest.raises(InputError, match="representation"):
        FilterConfig(representation="logits")
    with pytest.raises(InputError, match="reduction"):
        FilterConfig(reduce="median")
