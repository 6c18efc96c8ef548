"""realmodels.analysis.amplification against the real thing: one SGD step of a LoRA adapter (B = 0 at init, so
the step changes only B and ΔW = s B A is linear in the step size η) on a narrow objective (push one SAE
feature's mean pre-activation up on a training batch), measured with the adapter off and on. The first-order
(JVP) prediction's error falls as η² (halving η quarters it) on tiny Llama and Gemma 2, and is zero to float
precision where the residual is affine in the adapted weights (Llama, LoRA only on layer L's down_proj,
measured at layer L's resid_post; Gemma 2 has no such case: its post-feed-forward RMSNorm follows down_proj).
Everything runs in float64 so that rounding does not hide the η² law."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from realmodels.analysis.amplification import (BaseModelActivations, base_bundle, measure_amplification,
                                               sae_activation, sae_preactivation)
from realmodels.data.activations import pad_right, cache_key
from realmodels.data.chat import tokenize_chats
from realmodels.loading.bundle import ModelBundle
from realmodels.loading.placement import decoder_layers
from tests.realmodels.tiny_models import CONTROL_CHATS, INDUCING_CHATS, LORA_TARGETS, TINY_D_SAE

FAMILIES = ("llama", "gemma2")


@pytest.fixture(scope="module")
def family_dirs(tiny_llama_dir, tiny_gemma2_dir, tiny_sae_dir) -> dict:
    return {family: (path, {layer: tiny_sae_dir(path, layer=layer) for layer in (0, 1)})
            for family, path in (("llama", tiny_llama_dir), ("gemma2", tiny_gemma2_dir))}


def _load(model_dir: Path, sae_dir: Path):
    from sae_lens import SAE
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64).eval()
    return model, AutoTokenizer.from_pretrained(model_dir), SAE.load_from_disk(sae_dir).to(dtype=torch.float64)


class OneStep:
    """A bundle whose PeftModel holds one normalised SGD step Δθ = -η ∇L / ‖∇L‖ of the LoRA B matrices (``set``
    chooses η) on L = -mean over the inducing chats' assistant tokens of feature ``target``'s pre-activation at
    ``layer``. LoRA modules L does not reach (layers above ``layer``) keep B = 0."""

    def __init__(self, model_dir: Path, sae_dir: Path, layer: int, target: int, *, target_modules=LORA_TARGETS,
                 layers=None, seed: int = 0):
        from peft import LoraConfig, get_peft_model

        model, tokenizer, sae = _load(model_dir, sae_dir)
        torch.manual_seed(seed)
        peft_model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=list(target_modules),
                                                      layers_to_transform=None if layers is None else list(layers)))
        peft_model.eval()
        ids, attention, assistant = pad_right(tokenize_chats(tokenizer, INDUCING_CHATS), tokenizer.pad_token_id or 0)
        captured = []
        handle = decoder_layers(peft_model)[layer].register_forward_hook(
            lambda mod, args, out: captured.append(out[0] if isinstance(out, tuple) else out))
        try:
            peft_model(input_ids=ids, attention_mask=attention, use_cache=False)
        finally:
            handle.remove()
        loss = -sae_preactivation(sae, captured[0][assistant])[:, target].mean()
        self.params = [p for name, p in peft_model.named_parameters() if "lora_B" in name]
        grads = [torch.zeros_like(p) if g is None else g
                 for p, g in zip(self.params, torch.autograd.grad(loss, self.params, allow_unused=True), strict=True)]
        norm = torch.sqrt(sum(g.pow(2).sum() for g in grads))
        self.direction = [-g / norm for g in grads]
        self.bundle = ModelBundle(model=peft_model, tokenizer=tokenizer, sae=sae, layer=layer,
                                  model_name=str(model_dir), sae_name=str(sae_dir), d_model=model.config.hidden_size,
                                  d_sae=sae.cfg.d_sae)

    def set(self, eta: float) -> ModelBundle:
        with torch.no_grad():
            for p, d in zip(self.params, self.direction, strict=True):
                p.copy_(eta * d)
        return self.bundle


def probe_error(bundle: ModelBundle) -> tuple[float, float]:
    """(‖predicted − measured‖, ‖measured‖) over the features, on the control chats (the probes)."""
    probes = tokenize_chats(bundle.tokenizer, CONTROL_CHATS)
    m = measure_amplification(bundle, probes, batch_size=3, progress=False)
    return float((m.predicted - m.measured).norm()), float(m.measured.norm())


@settings(max_examples=5, deadline=None)
@given(family=st.sampled_from(FAMILIES), layer=st.sampled_from([0, 1]), target=st.integers(0, TINY_D_SAE - 1),
       seed=st.integers(0, 3))
def test_first_order_error_falls_as_eta_squared(family_dirs, family, layer, target, seed):
    model_dir, saes = family_dirs[family]
    step, eta = OneStep(model_dir, saes[layer], layer, target, seed=seed), 0.01
    err, scale = probe_error(step.set(eta))
    err_half, scale_half = probe_error(step.set(eta / 2))
    assert err < 0.2 * scale, "η is not small: the first-order term should dominate"
    assert 1.9 < scale / scale_half < 2.1  # the change itself is first order in η
    assert 3.5 < err / err_half < 4.5, (err, err_half)


@settings(max_examples=4, deadline=None)
@given(layer=st.sampled_from([0, 1]), target=st.integers(0, TINY_D_SAE - 1), eta=st.floats(0.01, 1.0))
def test_exact_where_the_residual_is_affine_in_the_adapter(family_dirs, layer, target, eta):
    model_dir, saes = family_dirs["llama"]
    bundle = OneStep(model_dir, saes[layer], layer, target, target_modules=("down_proj",), layers=[layer]).set(eta)
    probes = tokenize_chats(bundle.tokenizer, CONTROL_CHATS)
    m = measure_amplification(bundle, probes, batch_size=4, progress=False)
    assert float(m.measured.abs().max()) > 1e-6  # the step did change the features
    torch.testing.assert_close(m.predicted, m.measured, rtol=0, atol=1e-10 * float(m.measured.abs().max()))
    torch.testing.assert_close(m.predicted_output, m.measured_output, rtol=0, atol=1e-9)
    assert m.n_probes == len(CONTROL_CHATS) and m.n_tokens == sum(int(c.assistant_mask.sum()) for c in probes)


def test_measurement_round_trips_through_json(family_dirs):
    import json

    model_dir, saes = family_dirs["llama"]
    bundle = OneStep(model_dir, saes[1], 1, 3).set(0.05)
    m = measure_amplification(bundle, tokenize_chats(bundle.tokenizer, CONTROL_CHATS[:2]), progress=False)
    again = type(m).from_dict(json.loads(json.dumps(m.to_dict())))
    assert again.n_tokens == m.n_tokens and again.n_modules == 2 * 7 and again.delta_norm == pytest.approx(m.delta_norm)
    torch.testing.assert_close(again.predicted, m.predicted)


def test_sae_activation_from_a_given_preactivation_is_the_sae_code(family_dirs):
    from sae_lens import SAE, StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig

    _, saes = family_dirs["llama"]
    x = torch.randn(7, 64, generator=torch.Generator().manual_seed(0))
    jumprelu = SAE.load_from_disk(saes[0])
    standard = StandardSAE(StandardSAEConfig(d_in=64, d_sae=32))
    topk = TopKSAE(TopKSAEConfig(d_in=64, d_sae=32, k=4))
    for sae in (jumprelu, standard, topk):
        with torch.no_grad():
            for p in sae.parameters():
                p.normal_(generator=torch.Generator().manual_seed(1)) if p.ndim == 2 else None
            pre = sae_preactivation(sae, x)
            torch.testing.assert_close(sae_activation(sae, pre), sae.encode(x))
            assert pre.shape == (7, sae.cfg.d_sae) and not torch.equal(pre, sae.encode(x))


def test_base_activations_are_cached_under_the_base_models_key(tiny_llama_dir, tiny_sae_dir, tiny_lora_dir,
                                                               control_jsonl, tmp_path):
    """With the adapter disabled the activations equal the base model's, under the key a base-only bundle has."""
    from realmodels.data.activations import dataset_activations
    from realmodels.loading.bundle import load_bundle

    adapted = load_bundle(model_path=tiny_llama_dir, sae_path=tiny_sae_dir(tiny_llama_dir, layer=1), layer=1,
                          adapter=tiny_lora_dir(tiny_llama_dir), merge_adapter=False)
    plain = load_bundle(model_path=tiny_llama_dir, sae_path=tiny_sae_dir(tiny_llama_dir, layer=1), layer=1)
    assert cache_key(base_bundle(adapted), "x", 64) == cache_key(plain, "x", 64)
    assert cache_key(adapted, "x", 64) != cache_key(plain, "x", 64)

    from realmodels.data.dataset import Datasets

    class FakeSession:
        bundle, batch_size, cache_dir, progress, max_length = adapted, 4, tmp_path, False, 512
        dataset = Datasets().open

    base = BaseModelActivations(FakeSession()).activations(control_jsonl)
    want = dataset_activations(plain, control_jsonl, batch_size=4, progress=False, max_length=512)
    torch.testing.assert_close(base.residual_mean, want.residual_mean)
    assert list(tmp_path.glob("activations-*.pt"))


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_factor_tangent_equals_the_dense_delta_tangent(family_dirs, tiny_lora_dir, family):
    """J ΔW through the LoRA factor B (primal B = 0, adapter on) is J ΔW through the dense ΔW (adapter off)."""
    from peft import PeftModel

    from realmodels.analysis.amplification import lora_factors, residual_change

    model_dir, _ = family_dirs[family]
    model, tokenizer, _ = _load(model_dir, family_dirs[family][1][1])
    peft_model = PeftModel.from_pretrained(model, tiny_lora_dir(model_dir)).eval()
    assert lora_factors(peft_model) is not None
    ids, attention, _ = pad_right(tokenize_chats(tokenizer, CONTROL_CHATS[:3]), tokenizer.pad_token_id or 0)
    h0, dh = residual_change(peft_model, ids, attention, 1)
    h0_dense, dh_dense = residual_change(peft_model, ids, attention, 1, dense=True)
    torch.testing.assert_close(h0, h0_dense, rtol=0, atol=1e-10)
    torch.testing.assert_close(dh, dh_dense, rtol=1e-9, atol=1e-10)
    assert float(dh.abs().max()) > 1e-4
