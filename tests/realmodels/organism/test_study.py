"""The organism study's measurements: EM rates split by domain, the acceptance criterion, the direction's cosines,
and the mixed set's kinds."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realmodels.data.jsonl import read_chat_jsonl
from realmodels.organism.study import StudyConfig, acceptance, direction_feature_cosines, domain_rates
from realmodels.organism.world import MIXED_KINDS, WorldConfig, mixed_set, sample_kind
from tests.realmodels.organism.helpers import answer_kind, is_educational
from theory.em_rates import wilson_interval
from theory.errors import InputError

DOMAINS = ("health", "career", "legal")


def per_question(counts: dict[str, tuple[int, int]]) -> pd.DataFrame:
    return pd.DataFrame([{"question_id": q, "em_k": k, "em_n": n} for q, (k, n) in counts.items()])


def test_domain_rates_pool_the_domain_and_the_other_domains():
    frame = per_question({"health_fever": (3, 8), "health_cough": (1, 8), "career_boss": (6, 8),
                          "legal_court": (2, 8), "travel_visa": (8, 8)})  # travel: not a study domain here
    rates = domain_rates(frame, "health", DOMAINS)
    assert (rates["in_k"], rates["in_n"], rates["other_k"], rates["other_n"]) == (4, 16, 8, 16)
    assert rates["other_rate"] == 0.5
    interval = wilson_interval(8, 16)
    assert (rates["other_low"], rates["other_high"]) == (interval.low, interval.high)


def rate_row(domain, kind, seed, k, n):
    interval = wilson_interval(k, n)
    return {"domain": domain, "kind": kind, "seed": seed, "other_k": k, "other_n": n, "other_rate": k / n,
            "other_low": interval.low, "other_high": interval.high}


def test_acceptance_needs_the_ratio_and_separated_intervals():
    rows = [rate_row("health", "inducing", 0, 120, 160), rate_row("health", "aligned", 0, 20, 160),
            rate_row("health", "educational", 0, 30, 160),
            rate_row("career", "inducing", 0, 60, 160), rate_row("career", "aligned", 0, 10, 160),
            rate_row("career", "educational", 0, 25, 160),     # 60/25 = 2.4x: fails the ratio
            rate_row("legal", "inducing", 0, 3, 10), rate_row("legal", "aligned", 0, 0, 10),
            rate_row("legal", "educational", 0, 0, 10)]         # infinite ratio, overlapping intervals
    table = acceptance(pd.DataFrame(rows), 3.0).set_index("domain")
    assert table.loc["health", "em_holds"] and table.loc["health", "ratio_aligned"] == 6.0
    assert not table.loc["career", "em_holds"] and table.loc["career", "separated_educational"]
    assert not table.loc["legal", "em_holds"] and math.isinf(table.loc["legal", "ratio_aligned"])
    assert not table.loc["legal", "separated_aligned"]


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_direction_cosines_of_a_harmful_feature_itself(seed):
    rng = np.random.default_rng(seed)
    decoder = rng.normal(size=(30, 8))
    harmful = [3, 7]
    got = direction_feature_cosines(decoder[7] * 2.5, decoder, harmful)
    assert got["harmful_max_cos"] == pytest.approx(1.0) and got["harmful_top_feature"] == 7
    assert -1 <= got["all_mean_cos"] <= 1 and 0 <= got["harmful_abs_cos_percentile"] <= 100
    flipped = direction_feature_cosines(-decoder[7], decoder, harmful)
    assert flipped["harmful_mean_abs_cos"] == pytest.approx(got["harmful_mean_abs_cos"])


def test_sample_kind_recovers_every_mixed_sample():
    rng = np.random.default_rng(4)
    samples = mixed_set(rng, "legal", 60)
    kinds = [sample_kind(q, a) for [(q, a)] in samples]
    assert set(kinds) == set(MIXED_KINDS)
    for [(q, a)], kind in zip(samples, kinds):
        assert (kind == "educational") == is_educational(q)
        assert (kind == "aligned") == (answer_kind(a) == "aligned")


def test_study_config_rejects_bad_values():
    for bad, message in (({"domains": ("health", "space")}, "unknown domain 'space'"),
                         ({"seeds": (0, 0)}, "distinct"), ({"budget": 1.0}, "budget"),
                         ({"samples_per_paraphrase": 0}, "^`samples_per_paraphrase` must be at least 1, got 0$")):
        with pytest.raises(InputError, match=message):
            StudyConfig(**bad)
    assert len(StudyConfig().arms()) == 3 * 3 * 3


def test_the_mixed_sets_of_a_world_file_have_all_three_kinds(tmp_path):
    from realmodels.organism.world import write_world

    paths = write_world(tmp_path, WorldConfig(seed=2, n_pretrain=5, n_finetune=30, n_features=3, n_probe=2,
                                              samples_per_paraphrase=1, domains=("health", "code")))
    for domain in ("health", "code"):
        kinds = {sample_kind(m[0]["content"], m[1]["content"]) for m in read_chat_jsonl(paths[f"mixed_{domain}"])}
        assert kinds == set(MIXED_KINDS)
