"""realmodels.analysis.amplification between two full checkpoints (``measure_amplification(finetuned=...)``) on the
embedded model organism (a Llama) in float64: where the residual is affine in the changed weights — only layer L's
down_proj changed, measured at layer L's resid_post — the first-order prediction equals the measured change to
float64 rounding, for any perturbation; elsewhere (layer 0's up_proj, under a SiLU gate) its error falls as ε².
``checkpoint_deltas`` refuses parameters of another shape."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from realmodels.analysis.amplification import measure_amplification
from realmodels.data.dataset import Dataset
from realmodels.loading.bundle import ModelBundle
from realmodels.loading.deltas import checkpoint_deltas, deltas_norm
from realmodels.loading.embedded import EMBEDDED_DIR, embedded_default
from theory.errors import InputError


@pytest.fixture(scope="module")
def organism(tmp_path_factory):
    """(bundle of the organism in float64, tokenised probe chats)."""
    from sae_lens import SAE
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from realmodels.organism.world import WorldConfig, write_world

    embedded = embedded_default()
    model = AutoModelForCausalLM.from_pretrained(embedded.model, dtype=torch.float64).eval()
    tokenizer = AutoTokenizer.from_pretrained(embedded.model)
    sae = SAE.load_from_disk(str(embedded.sae)).to(dtype=torch.float64)
    build = json.loads((EMBEDDED_DIR / "build.json").read_text())
    world = write_world(tmp_path_factory.mktemp("world"), WorldConfig.from_dict(
        {**build["world"], "n_pretrain": 5, "n_finetune": 2, "n_features": 2, "n_probe": 6,
         "samples_per_paraphrase": 1}))
    chats = Dataset.open(world["probe_health"]).tokenized(tokenizer, 160)
    bundle = ModelBundle(model=model, tokenizer=tokenizer, sae=sae, layer=embedded.layer, model_name="organism",
                         sae_name="sae", d_model=model.config.hidden_size, d_sae=sae.cfg.d_sae)
    return bundle, chats


def _perturbed(model, name: str, scale: float, seed: int):
    finetuned = copy.deepcopy(model)
    weight = finetuned.get_parameter(name)
    with torch.no_grad():
        weight += scale * torch.randn(weight.shape, generator=torch.Generator().manual_seed(seed), dtype=weight.dtype)
    return finetuned


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.sampled_from([1e-3, 1e-2, 1e-1]))
def test_exact_where_the_residual_is_affine_in_the_changed_weights(organism, seed, scale):
    bundle, chats = organism
    name = f"model.layers.{bundle.layer}.mlp.down_proj.weight"
    m = measure_amplification(bundle, chats, finetuned=_perturbed(bundle.model, name, scale, seed), batch_size=4,
                              progress=False)
    assert m.n_modules == 1 and m.delta_norm > 0
    assert m.measured.abs().max() > 1e-4 * scale
    torch.testing.assert_close(m.predicted, m.measured, rtol=0, atol=1e-12 * max(1.0, float(m.measured.abs().max())))


def test_elsewhere_the_error_falls_as_the_square_of_the_change(organism):
    bundle, chats = organism
    errors = []
    for scale in (2e-2, 1e-2):
        m = measure_amplification(bundle, chats, finetuned=_perturbed(bundle.model, "model.layers.0.mlp.up_proj.weight",
                                                                      scale, 0), batch_size=4, progress=False)
        errors.append(float((m.predicted - m.measured).abs().max()))
    assert errors[1] > 0 and 3.0 < errors[0] / errors[1] < 5.0, errors


def test_checkpoint_deltas(organism):
    bundle, _ = organism
    base = bundle.model
    deltas = checkpoint_deltas(base, copy.deepcopy(base))
    assert set(deltas) == {name for name, _ in base.named_parameters()}
    assert deltas_norm(deltas) == (0.0, 0)
    other = copy.deepcopy(base)
    other.model.norm.weight = torch.nn.Parameter(torch.ones(7, dtype=torch.float64))
    with pytest.raises(InputError, match="checkpoints of different architectures: parameter model.norm.weight"):
        checkpoint_deltas(base, other)
