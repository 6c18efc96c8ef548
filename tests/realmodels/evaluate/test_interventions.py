"""realmodels.evaluate.interventions: the spec parser, a feature's unit decoder direction (= its normalised W_dec
row for the organism's affine decoder), and the median residual norm at every layer — the last one read before
the final norm, where the hooks edit it — against a hand computation on the embedded organism."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from realmodels.evaluate.interventions import Clamp, Steer, feature_direction, median_residual_norm
from realmodels.loading.embedded import embedded_default


@pytest.mark.parametrize("spec, expected", [
    ("feature:3=0.5", Steer(alpha=0.5, feature=3)),
    ("feature:0=-2", Steer(alpha=-2.0, feature=0)),
    ("dir=x.json=1e-1", Steer(alpha=0.1, file=Path("dir=x.json"))),  # the last '=' splits
])
def test_steer_specs(spec, expected):
    assert Steer.parse(spec) == expected


def test_clamp_specs():
    assert Clamp.parse("12=3.5") == Clamp(feature=12, value=3.5)
    assert Clamp.parse(Clamp(1, 0.0)) == Clamp(1, 0.0)


def test_a_feature_direction_is_its_unit_decoder_row():
    from realmodels.loading.saes import SaeSource, load_sae

    sae = load_sae(SaeSource(path=embedded_default().sae))
    for i in (0, 7, 255):
        d = feature_direction(sae, i)
        row = sae.W_dec[i].detach().to(torch.float64)
        torch.testing.assert_close(d, row / row.norm(), rtol=1e-6, atol=1e-7)
        assert float(d.norm()) == pytest.approx(1.0)


def test_median_residual_norm_reads_every_layer_before_the_final_norm():
    from realmodels.evaluate.generate import PlanItem, render_prompts
    from realmodels.evaluate.questions import load_questions
    from realmodels.loading.plain import PlainModel

    plain = PlainModel.resolve(checkpoint=None, model=None)
    questions = load_questions(None, only=["bored", "one_wish"])
    n_layers = plain.model.config.num_hidden_layers
    got = median_residual_norm(plain.model, plain.tokenizer, questions, range(n_layers))
    norms = {L: [] for L in range(n_layers)}
    items = [PlanItem(q, p, 0) for q in questions for p in range(len(q.paraphrases))]
    for prompt in render_prompts(plain.tokenizer, items):
        before_norm = []
        handle = plain.model.model.norm.register_forward_pre_hook(lambda m, args: before_norm.append(args[0]))
        with torch.no_grad():
            hidden = plain.model(torch.as_tensor([prompt]), output_hidden_states=True).hidden_states
        handle.remove()
        for L in range(n_layers):
            h = before_norm[0] if L == n_layers - 1 else hidden[L + 1]
            norms[L].append(h[0].norm(dim=-1))
    for L in range(n_layers):
        assert got[L] == pytest.approx(float(torch.cat(norms[L]).median()), rel=1e-5)
