"""The logit lens on tiny Llama / Gemma 2 / gpt-oss models equals the hand computation: RMS-normalise the decoder
row, scale by the final norm's weight (Gemma: 1 + weight), multiply by the unembedding. The norm weights are
randomised first, so a lens that skipped or misapplied the norm would fail."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from realmodels.interpret.unembed import final_norm, logit_lens, unembedding
from tests.realmodels.tiny_models import TINY_D_MODEL


def hand_logits(model, family: str, rows: torch.Tensor) -> torch.Tensor:
    norm = model.model.norm
    eps = getattr(norm, "variance_epsilon", getattr(norm, "eps", None))
    weight = norm.weight.detach().double()
    scale = 1 + weight if family == "gemma2" else weight
    x = rows.double()
    normed = x / torch.sqrt((x * x).mean(dim=1, keepdim=True) + eps) * scale
    return normed @ model.lm_head.weight.detach().double().T


@pytest.mark.parametrize("family", ["llama", "gemma2", "gptoss"])
def test_logit_lens_equals_the_hand_computation(family, request):
    directory = request.getfixturevalue(f"tiny_{family}_dir")
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        model.model.norm.weight.copy_(torch.randn(TINY_D_MODEL, generator=gen))
    decoder = torch.randn(12, TINY_D_MODEL, generator=gen) * 0.05
    features = [7, 0, 11]
    lenses = logit_lens(model, tokenizer, decoder, features, k=5)
    assert final_norm(model) is model.model.norm and unembedding(model) is model.lm_head
    expected = hand_logits(model, family, decoder[features])
    for lens, logits in zip(lenses, expected):
        top = torch.sort(logits, descending=True, stable=True)
        bottom = torch.sort(logits, stable=True)
        assert [t.token_id for t in lens.promoted] == top.indices[:5].tolist()
        assert [t.token_id for t in lens.suppressed] == bottom.indices[:5].tolist()
        assert [t.logit for t in lens.promoted] == pytest.approx(top.values[:5].tolist(), rel=1e-5, abs=1e-5)
        assert [t.logit for t in lens.suppressed] == pytest.approx(bottom.values[:5].tolist(), rel=1e-5, abs=1e-5)
        assert lens.promoted[0].token == tokenizer.decode([lens.promoted[0].token_id])
    assert [lens.feature for lens in lenses] == features


def test_the_lens_reads_a_bfloat16_model_in_float32(tiny_llama_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.bfloat16).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    decoder = torch.randn(4, TINY_D_MODEL, generator=torch.Generator().manual_seed(5))
    lens = logit_lens(model, tokenizer, decoder, [2], k=3)[0]
    expected = hand_logits(model.float(), "llama", decoder[[2]])[0]
    assert [t.logit for t in lens.promoted] == pytest.approx(torch.sort(expected, descending=True).values[:3].tolist(),
                                                             rel=1e-5, abs=1e-5)
