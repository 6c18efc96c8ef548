"""realmodels.intervene.hooks on the embedded organism (its model and TopK SAE): steering by 0 and clamping a
feature to its own value leave every logit bit for bit; steering moves the layer's residual by exactly α v and
nothing below it; clamping a feature to c makes the SAE read c for it (error term kept: the residual moves by
(c − z_i) d_i, d_i the decoder's direction for i); generation with the hooks; bad input is one InputError."""

from __future__ import annotations

import pytest
import torch

from realmodels.intervene.hooks import clamped, edited, steered
from theory.errors import InputError


@pytest.fixture(scope="module")
def organism():
    from sae_lens import SAE
    from transformers import AutoModelForCausalLM

    from realmodels.loading.embedded import embedded_default

    embedded = embedded_default()
    model = AutoModelForCausalLM.from_pretrained(embedded.model).eval()
    sae = SAE.load_from_disk(str(embedded.sae)).eval()
    return model, sae, embedded.layer


def _ids(model, n: int = 12, batch: int = 3) -> torch.Tensor:
    return torch.randint(5, model.config.vocab_size, (batch, n), generator=torch.Generator().manual_seed(0))


def _run(model, ids):
    with torch.inference_mode():
        out = model(input_ids=ids, output_hidden_states=True, use_cache=False)
    return out.logits, out.hidden_states


def test_steering_by_zero_and_clamping_to_own_value_change_nothing(organism):
    model, sae, layer = organism
    ids = _ids(model)
    logits, hidden = _run(model, ids)
    v = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(1))
    with steered(model, layer, v, 0.0):
        assert torch.equal(_run(model, ids)[0], logits)
    z = sae.encode(hidden[layer + 1])
    silent = int(torch.nonzero((z > 0).sum(dim=(0, 1)) == 0)[0, 0])  # a feature off at every position
    with clamped(model, layer, sae, [silent], [0.0]):
        assert torch.equal(_run(model, ids)[0], logits)
    # one position: clamp the features that fire there to their own (nonzero) values
    one = ids[:1, :1]
    logits_one, hidden_one = _run(model, one)
    z_one = sae.encode(hidden_one[layer + 1])[0, 0]
    firing = torch.nonzero(z_one > 0)[:, 0].tolist()
    assert firing
    with clamped(model, layer, sae, firing, z_one[firing].tolist()):
        assert torch.equal(_run(model, one)[0], logits_one)
    with clamped(model, layer, sae, firing, [0.0] * len(firing)):
        assert not torch.equal(_run(model, one)[0], logits_one)  # the test can fail: zeroing them does change it


def test_steering_moves_the_residual_by_alpha_v_at_the_layer_only(organism):
    model, _, layer = organism
    ids = _ids(model)
    _, hidden = _run(model, ids)
    v = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(2))
    with steered(model, layer, v, 2.5):
        _, moved = _run(model, ids)
    for below in range(layer + 1):
        assert torch.equal(moved[below], hidden[below])
    torch.testing.assert_close(moved[layer + 1] - hidden[layer + 1], (2.5 * v).expand_as(hidden[layer + 1]),
                               atol=1e-5, rtol=1e-5)
    _, after = _run(model, ids)
    assert torch.equal(after[layer + 1], hidden[layer + 1])  # the hook is gone


def test_clamping_sets_the_feature_and_keeps_the_error_term(organism):
    model, sae, layer = organism
    ids = _ids(model)
    _, hidden = _run(model, ids)
    h = hidden[layer + 1]
    z = sae.encode(h)
    feature = int(torch.argmax((z > 0).float().mean(dim=(0, 1))))  # the feature that fires most often
    value = 3.0
    with clamped(model, layer, sae, [feature], [value]):
        _, moved = _run(model, ids)
    one_hot = torch.zeros(sae.cfg.d_sae)
    one_hot[feature] = 1.0
    with torch.no_grad():  # the decoder's direction for the feature (W_dec[i], rescaled if the SAE says so)
        d_i = sae.decode(one_hot) - sae.decode(torch.zeros(sae.cfg.d_sae))
    expected = h + (value - z[..., feature]).unsqueeze(-1) * d_i
    torch.testing.assert_close(moved[layer + 1], expected, atol=1e-5, rtol=1e-5)


def test_generation_with_a_hook_is_deterministic_and_steering_changes_it(organism):
    model, _, layer = organism
    ids = _ids(model, n=6, batch=1)
    kwargs = {"max_new_tokens": 8, "do_sample": False, "pad_token_id": 0}
    with torch.inference_mode():
        plain = model.generate(ids, **kwargs)
        with steered(model, layer, torch.ones(model.config.hidden_size), 0.0):
            zero = model.generate(ids, **kwargs)
        with steered(model, layer, torch.ones(model.config.hidden_size), 50.0):
            strong = model.generate(ids, **kwargs)
    assert torch.equal(plain, zero)
    assert not torch.equal(plain, strong)


@pytest.mark.parametrize("call, message", [
    (lambda m, s, L: steered(m, L, torch.ones(7), 1.0), "the steering vector has d_model=7"),
    (lambda m, s, L: steered(m, L, torch.ones(m.config.hidden_size), float("nan")), "must be finite"),
    (lambda m, s, L: steered(m, 99, torch.ones(m.config.hidden_size), 1.0), "layer 99 is out of range"),
    (lambda m, s, L: clamped(m, L, s, [s.cfg.d_sae], [0.0]), "out of range: the SAE has features"),
    (lambda m, s, L: clamped(m, L, s, [-1], [0.0]), "feature -1 is out of range"),
    (lambda m, s, L: clamped(m, L, s, [0], [float("inf")]), "must be finite"),
])
def test_bad_input_is_one_input_error(organism, call, message):
    model, sae, layer = organism
    with pytest.raises(InputError, match=message):
        with call(model, sae, layer):
            pass
