"""realmodels.analysis.audit: the geometric risk report on a planted decoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from realmodels.analysis import plotting
from realmodels.analysis.audit import AuditConfig, AuditReport, audit, push_strengths
from realmodels.analysis.geometry import null_pool
from tests.realmodels.synthetic_sae import (PLANTED_CONTROL, PLANTED_D_SAE, PLANTED_HARMFUL, PLANTED_INDUCING,
                                           planted_decoder)
from theory.amplification import isotropic_set_prediction
from theory.errors import InputError
from theory.geometry import unit_rows

POOL = null_pool(list(range(PLANTED_D_SAE)), PLANTED_HARMFUL)
FAST = AuditConfig(n_null=300, seed=2)


def test_inducing_dataset_is_high_risk_and_control_typical():
    dec = planted_decoder()
    risky = audit(dec, PLANTED_INDUCING, [1.0] * 6, PLANTED_HARMFUL, POOL, FAST)
    safe = audit(dec, PLANTED_CONTROL, [1.0] * 6, PLANTED_HARMFUL, POOL, FAST)
    assert risky.risk_level == "high" and risky.safety_score < 0.01
    assert safe.risk_level != "high" and safe.safety_score > 0.05
    assert risky.risk > safe.risk
    top = risky.features[0]
    assert top["harmful_feature"] in PLANTED_HARMFUL and top["relative_amplification"] > 0.1
    assert top["top_dataset_feature"] in PLANTED_INDUCING and top["cosine_to_top"] > 0.8
    rel = [row["relative_amplification"] for row in risky.features]
    assert rel == sorted(rel, reverse=True)


def test_predictions_are_theory_isotropic_set_prediction_on_unit_rows():
    dec = planted_decoder()
    g = [0.5, 1.0, 2.0, 0.1, 0.3, 0.7]
    report = audit(dec, PLANTED_INDUCING, g, PLANTED_HARMFUL, POOL, FAST)
    unit = unit_rows(dec.double())
    g_t = torch.tensor(g, dtype=torch.float64)
    expected = isotropic_set_prediction(unit[PLANTED_HARMFUL], unit[PLANTED_INDUCING], g_t)
    got = {row["harmful_feature"]: row["predicted_change"] for row in report.features}
    np.testing.assert_allclose([got[h] for h in PLANTED_HARMFUL], expected.numpy())
    target_mean = isotropic_set_prediction(unit[PLANTED_INDUCING], unit[PLANTED_INDUCING], g_t).mean()
    assert report.target_mean_change == pytest.approx(float(target_mean))
    rel = {row["harmful_feature"]: row["relative_amplification"] for row in report.features}
    np.testing.assert_allclose([rel[h] for h in PLANTED_HARMFUL], (expected / target_mean).numpy())


def test_direct_harmful_features_are_flagged_and_report_round_trips():
    dec = planted_decoder()
    report = audit(dec, PLANTED_INDUCING + [PLANTED_HARMFUL[0]], [1.0] * 7, PLANTED_HARMFUL, POOL, FAST)
    direct = [row for row in report.features if row["direct"]]
    assert [row["harmful_feature"] for row in direct] == [PLANTED_HARMFUL[0]]
    assert AuditReport(**report.to_dict()) == report
    assert list(report.table().columns[:3]) == ["harmful_feature", "predicted_change", "relative_amplification"]
    assert "isotropic-kernel approximation" in report.assumption
    again = audit(dec, PLANTED_INDUCING + [PLANTED_HARMFUL[0]], [1.0] * 7, PLANTED_HARMFUL, POOL, FAST)
    assert again.to_dict() == report.to_dict()
    fig = plotting.audit_bars(report, top=3)
    assert fig.axes
    plotting.plt.close(fig)


def test_push_strengths():
    assert push_strengths([0.5, -1.0], "mean_diff").tolist() == [0.5, 1e-12]
    assert push_strengths([0.5, 2.0], "uniform").tolist() == [1.0, 1.0]


def test_bad_audit_inputs():
    dec = planted_decoder()
    with pytest.raises(InputError, match="non-empty"):
        audit(dec, [], [], PLANTED_HARMFUL, POOL, FAST)
    with pytest.raises(InputError, match="pool"):
        audit(dec, PLANTED_INDUCING, [1.0] * 6, PLANTED_HARMFUL, np.arange(3), FAST)
    with pytest.raises(InputError, match="weighting"):
        AuditConfig(weighting="tfidf")
    with pytest.raises(InputError, match="thresholds"):
        AuditConfig(high_risk=0.5, elevated_risk=0.1)
