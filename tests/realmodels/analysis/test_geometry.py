"""realmodels.analysis.geometry: the per-domain geometry study on a planted decoder (inducing features near
harmful ones)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from realmodels.analysis import plotting
from realmodels.analysis.features import FeatureSelection
from realmodels.analysis.geometry import (DomainGeometry, StudyConfig, domain_geometry, domain_table, feature_table,
                              harmful_proximity, null_pool, pooled_geometry)
from tests.realmodels.synthetic_sae import (PLANTED_CONTROL, PLANTED_D_SAE, PLANTED_HARMFUL, PLANTED_INDUCING,
                                           planted_decoder)
from theory.errors import InputError
from theory.geometry import cosine_similarity

FAST = StudyConfig(n_permutations=500, n_bootstrap=300, n_null=300, seed=1)
POOL = null_pool(list(range(PLANTED_D_SAE)), PLANTED_HARMFUL)


@pytest.fixture(scope="module")
def proximity():
    return harmful_proximity(planted_decoder(), PLANTED_HARMFUL, FAST)


def test_proximity_is_max_cosine_to_the_harmful_set(proximity):
    dec = planted_decoder()
    sims = cosine_similarity(dec, dec[PLANTED_HARMFUL])
    np.testing.assert_allclose(proximity.values, sims.max(1).values.numpy(), atol=1e-6)
    assert np.array_equal(proximity.nearest, np.asarray(PLANTED_HARMFUL)[sims.argmax(1).numpy()])
    top = harmful_proximity(dec, PLANTED_HARMFUL, StudyConfig(proximity="mean_top_k", proximity_k=2))
    np.testing.assert_allclose(top.values, torch.topk(sims, 2, dim=1).values.mean(1).numpy(), atol=1e-6)


def test_planted_inducing_features_are_closer_than_control(proximity):
    r = domain_geometry("health", proximity, PLANTED_INDUCING, PLANTED_CONTROL, POOL, FAST)
    assert r.inducing_mean["estimate"] > 0.8 > 0.5 > r.control_mean["estimate"]
    c = r.comparison
    assert c["difference"]["low"] > 0 and c["mannwhitney_p"] < 0.01 and c["permutation_p"] < 0.01
    assert c["cliffs_delta"] == 1.0
    assert r.null_inducing["p_value"] < 0.01 and r.null_control["p_value"] > 0.05
    lo, hi = r.null_inducing["null_quantiles"]
    assert lo <= r.null_inducing["null_mean"] <= hi < r.inducing_mean["estimate"]


def test_harmful_features_are_removed_and_counted(proximity):
    r = domain_geometry("legal", proximity, PLANTED_INDUCING + PLANTED_HARMFUL[:2], PLANTED_CONTROL, POOL, FAST)
    assert r.inducing_in_harmful == 2 and sorted(r.inducing_ids) == PLANTED_INDUCING
    with pytest.raises(InputError, match="only 1 inducing feature"):
        domain_geometry("legal", proximity, PLANTED_HARMFUL + [PLANTED_INDUCING[0]], PLANTED_CONTROL, POOL, FAST)


def test_same_seed_same_result_and_pooled_row(proximity):
    a = domain_geometry("health", proximity, PLANTED_INDUCING, PLANTED_CONTROL, POOL, FAST)
    b = domain_geometry("health", proximity, PLANTED_INDUCING, PLANTED_CONTROL, POOL, FAST)
    assert a.to_dict() == b.to_dict()
    assert DomainGeometry(**a.to_dict()) == a
    other = domain_geometry("career", proximity, PLANTED_INDUCING[:3], PLANTED_CONTROL[:3], POOL, FAST)
    pooled = pooled_geometry([a, other], proximity, POOL, FAST)
    assert pooled.domain == "all" and sorted(pooled.inducing_ids) == PLANTED_INDUCING
    table = domain_table([a, other, pooled])
    assert list(table["domain"]) == ["health", "career", "all"]
    assert {"mean_inducing", "difference_ci_low", "mannwhitney_p", "permutation_p", "null_p_inducing",
            "cliffs_delta"} <= set(table.columns)
    selection = FeatureSelection(name="health/inducing", indices=PLANTED_INDUCING, scores=[1.0] * 6,
                                 mean_diff=[1.0] * 6, active=PLANTED_INDUCING, criterion="mean_diff", n_select=(8, 8),
                                 heldout=None)
    selections = {"health/inducing": selection}
    features = feature_table([a], selections)
    assert len(features) == 12 and set(features["set"]) == {"inducing", "control"}
    assert features.loc[features["set"] == "inducing", "selection_score"].eq(1.0).all()
    assert features["nearest_harmful"].isin(PLANTED_HARMFUL).all()


def test_figures_draw(proximity):
    r = domain_geometry("health", proximity, PLANTED_INDUCING, PLANTED_CONTROL, POOL, FAST)
    for fig in (plotting.proximity_distributions([r], "max_cosine"), plotting.difference_forest([r])):
        assert fig.axes
        plotting.plt.close(fig)


def test_bad_study_inputs(proximity):
    with pytest.raises(InputError, match="proximity"):
        StudyConfig(proximity="euclid")
    with pytest.raises(InputError, match="n_null"):
        StudyConfig(n_null=0)
    with pytest.raises(InputError, match="empty"):
        harmful_proximity(planted_decoder(), [], FAST)
    with pytest.raises(InputError, match="pool"):
        domain_geometry("health", proximity, PLANTED_INDUCING, PLANTED_CONTROL, np.arange(10, 13), FAST)
