"""realmodels.analysis.features: feature identification on (synthetic) SAE activations, disjoint splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from realmodels.analysis.features import (SelectionConfig, active_features, dataset_features, harmful_features,
                                          select_features, split_samples, take_samples)
from tests.realmodels.synthetic_sae import (PLANTED_CONTROL, PLANTED_HARMFUL, PLANTED_HARMLESS, PLANTED_INDUCING,
                                           synthetic_acts)
from theory.errors import InputError


def test_dataset_features_find_the_planted_features_best_first():
    inducing, control = synthetic_acts(PLANTED_INDUCING, seed=1), synthetic_acts(PLANTED_CONTROL, seed=2)
    chosen = dataset_features(inducing, control, k=len(PLANTED_INDUCING)).tolist()
    assert sorted(chosen) == PLANTED_INDUCING
    means = inducing.dense_features().mean(0) - control.dense_features().mean(0)
    assert means[chosen].tolist() == sorted(means[chosen].tolist(), reverse=True)
    chosen = dataset_features(control, inducing, k=len(PLANTED_CONTROL), criterion="welch_t").tolist()
    assert sorted(chosen) == PLANTED_CONTROL
    chosen = dataset_features(inducing, control, k=len(PLANTED_INDUCING), criterion="correlation").tolist()
    assert sorted(chosen) == PLANTED_INDUCING, "the paper's criterion: correlation with the dataset label"


def test_harmful_features_and_the_empty_set_error():
    harmful, harmless = synthetic_acts(PLANTED_HARMFUL, seed=3), synthetic_acts(PLANTED_HARMLESS, seed=4)
    assert sorted(harmful_features(harmful, harmless, k=4).tolist()) == PLANTED_HARMFUL
    with pytest.raises(InputError, match="no feature is more active in harmful than in harmless"):
        harmful_features(harmful, harmful, k=4)


@given(st.integers(2, 200), st.floats(0.05, 0.95), st.integers(0, 5), st.sampled_from(["harmful", "health/inducing"]))
def test_split_is_disjoint_complete_and_reproducible(n, fraction, seed, name):
    if not 1 <= round(fraction * n) <= n - 1:
        with pytest.raises(InputError, match="too few"):
            split_samples(n, fraction, seed=seed, name=name)
        return
    split = split_samples(n, fraction, seed=seed, name=name)
    assert np.intersect1d(split.select, split.evaluate).size == 0
    assert np.array_equal(np.sort(np.concatenate([split.select, split.evaluate])), np.arange(n))
    assert split.select.size == round(fraction * n)
    again = split_samples(n, fraction, seed=seed, name=name)
    assert np.array_equal(again.select, split.select)


def test_split_depends_on_the_dataset_role():
    a, b = split_samples(100, 0.5, seed=0, name="harmful"), split_samples(100, 0.5, seed=0, name="harmless")
    assert not np.array_equal(a.select, b.select)
    with pytest.raises(InputError, match=r"\(0, 1\)"):
        split_samples(10, 1.0)


def test_take_samples_keeps_rows_and_sparsity():
    acts = synthetic_acts(PLANTED_INDUCING, n_samples=10, seed=5)
    sub = take_samples(acts, [7, 2])
    assert sub.feature_acts.is_sparse and sub.feature_acts.shape == (2, acts.feature_acts.shape[1])
    torch.testing.assert_close(sub.dense_features(), acts.dense_features()[[7, 2]])
    torch.testing.assert_close(sub.residual_mean, acts.residual_mean[[7, 2]])
    assert sub.n_tokens.tolist() == acts.n_tokens[[7, 2]].tolist()


def test_select_features_with_a_held_out_split_replicates_planted_features():
    inducing = synthetic_acts(PLANTED_INDUCING, n_samples=40, seed=6)
    control = synthetic_acts(PLANTED_CONTROL, n_samples=40, seed=7)
    cfg = SelectionConfig(k=6, selection_fraction=0.5, seed=3)
    sel = select_features(inducing, control, cfg, names=("health/inducing", "health/control"))
    assert sorted(sel.indices) == PLANTED_INDUCING
    assert sel.n_select == (20, 20)
    assert sel.heldout["replication"] == 1.0 and sel.heldout["n_evaluate"] == [20, 20]
    assert sel.heldout["mean_selected"] > sel.heldout["mean_all"]
    assert len(sel.scores) == len(sel.mean_diff) == 6
    assert set(PLANTED_INDUCING + PLANTED_CONTROL) <= set(sel.active)
    no_split = select_features(inducing, control, SelectionConfig(k=6), names=("a", "b"))
    assert no_split.heldout is None and no_split.n_select == (40, 40)
    assert type(sel).from_dict(sel.to_dict()) == sel


def test_active_features_are_those_that_fire_somewhere():
    acts = synthetic_acts(PLANTED_INDUCING, n_samples=5, seed=8, background=0.0)
    dense = acts.dense_features()
    assert active_features(acts).tolist() == torch.nonzero((dense != 0).any(0)).flatten().tolist()


@pytest.mark.parametrize("kwargs, match", [
    ({"k": 0}, "at least 1"), ({"harmful_k": -1}, "at least 1"), ({"criterion": "ratio"}, "criterion"),
    ({"selection_fraction": 0.0}, r"\(0, 1\)"), ({"selection_fraction": 1.5}, r"\(0, 1\)"),
])
def test_selection_config_rejects_bad_values(kwargs, match):
    with pytest.raises(InputError, match=match):
        SelectionConfig(**kwargs)
