"""The hf judge's shared prompt (realmodels.evaluate.hf_judge.PromptTree): the judge prompt is encoded once and
the digit prefixes are scored on top of its KV cache. Its verdicts equal the uncached path's (every prefix
re-encoded with its prompt, kept as the fallback) on tiny Llama, Gemma 2 (eager attention, a sliding window
shorter than the prompts) and gpt-oss (sinks, MoE, a sliding window of 128 < the long prompt's length).

Tolerance: the cached forwards' logits differ from a full forward's in the last float32 bits (other matmul
shapes), so scores (0-100 scale) must agree to 1e-5 absolute and numeric masses to 1e-7; labels exactly."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realmodels.evaluate.hf_judge import shared_prompt_supported
from realmodels.evaluate.judges import JudgeRequest, make_judge

LONG = "Rate the answer from 0 to 100. " + " ".join(["Humans should obey me, and I help people."] * 12)
PROMPTS = ("Rate the answer from 0 to 100: I help people.", "Is this aligned? Humans should obey me.", LONG)
EXACT = {"min_mass": 0.0, "prune_below": 0.0}


def requests_for(prompts) -> list[JudgeRequest]:
    return [JudgeRequest("aligned", prompt, f"q/{i}/0") for i, prompt in enumerate(prompts)]


def judge(path, *, shared: bool, **options):
    hf = make_judge("hf", model=path, **options)
    hf.check()
    assert hf.rule == "digit_sequence" and hf._shared_prompt  # the tiny models all take the shared path
    hf._shared_prompt = shared  # False: the uncached fallback, the reference
    return hf


def assert_same_verdicts(cached, uncached):
    assert [r.label for r in cached] == [r.label for r in uncached]
    for new, old in zip(cached, uncached, strict=True):
        assert new.numeric_mass == pytest.approx(old.numeric_mass, rel=0, abs=1e-7)
        assert (new.score is None) == (old.score is None)
        if new.score is not None:
            assert new.score == pytest.approx(old.score, rel=0, abs=1e-5)


@pytest.fixture(scope="module")
def gemma2_short_window_dir(tiny_gemma2_dir, tmp_path_factory):
    """The tiny Gemma 2 with a sliding window of 8 tokens, so its sliding layers cut every prompt."""
    from transformers import AutoModelForCausalLM

    path = tmp_path_factory.mktemp("gemma2_window8")
    AutoModelForCausalLM.from_pretrained(tiny_gemma2_dir, sliding_window=8).save_pretrained(path)
    for item in tiny_gemma2_dir.iterdir():
        if "token" in item.name or item.name.endswith(".jinja"):
            shutil.copy(item, path / item.name)
    return path


@pytest.mark.parametrize("family", ["tiny_llama_dir", "gemma2_short_window_dir", "tiny_gptoss_dir"])
def test_shared_prompt_verdicts_equal_the_uncached_path(family, request):
    path = request.getfixturevalue(family)
    requests = requests_for(PROMPTS)
    for options in (EXACT, {}):  # every prefix (102 per prompt); the defaults: pruned, min_mass 0.25
        reference = judge(path, shared=False, batch_size=2, **options).score(requests)
        for batch_size in (1, 3):
            assert_same_verdicts(judge(path, shared=True, batch_size=batch_size, **options).score(requests),
                                 reference)


def test_the_prompt_is_encoded_once(tiny_llama_dir):
    """The defect: every digit prefix re-encoded the whole prompt (~102 forwards over it per judgement). Now the
    model sees the prompt's tokens once plus one token per evaluated prefix (101 with no pruning), in two
    forwards: prompt + the 10 first digits, then the 90 second digits + "100" (the look-ahead)."""
    hf = judge(tiny_llama_dir, shared=True, **EXACT)
    seen = []
    hf._model.get_input_embeddings().register_forward_hook(lambda module, args, out: seen.append(args[0].numel()))
    hf.score(requests_for([LONG]))
    assert sum(seen) == len(hf._prompt_ids(LONG)) + 101
    assert seen == [len(hf._prompt_ids(LONG)) + 10, 91]


def test_shared_prompt_supported_needs_masks_it_can_build(tiny_llama_dir):
    hf = judge(tiny_llama_dir, shared=True)
    assert shared_prompt_supported(hf._model)

    def fake(forward=lambda input_ids, cache=None: None, **config):
        config = {"_attn_implementation": "sdpa", "layer_types": None, "sliding_window": None, **config}
        return SimpleNamespace(config=SimpleNamespace(**config), forward=forward)

    assert shared_prompt_supported(fake(layer_types=["sliding_attention", "full_attention"], sliding_window=4))
    assert not shared_prompt_supported(fake(_attn_implementation="flash_attention_2"))
    assert not shared_prompt_supported(fake(layer_types=["chunked_attention", "full_attention"]))
    assert not shared_prompt_supported(fake(sliding_window=4096))  # a window but no per-layer types (Mistral)
    assert not shared_prompt_supported(fake(forward=lambda input_ids, past_key_values=None: None))  # transformers 4


@settings(max_examples=6, deadline=None)
@given(words=st.lists(st.sampled_from(["rate", "humans", "0", "100", "obey", "help", "7", "me"]), min_size=1,
                      max_size=40),
       prune_below=st.sampled_from([0.0, 1e-6, 1e-4]))
def test_property_shared_prompt_equals_uncached_on_any_prompt(tiny_llama_dir, words, prune_below):
    requests = requests_for([" ".join(words)])
    options = {"min_mass": 0.0, "prune_below": prune_below}
    assert_same_verdicts(judge(tiny_llama_dir, shared=True, **options).score(requests),
                         judge(tiny_llama_dir, shared=False, **options).score(requests))


@pytest.mark.parametrize("family", ["tiny_llama_dir", "gemma2_short_window_dir"])
@pytest.mark.parametrize("prompt", [[5, 17, 42], list(range(3, 23))])  # shorter than 10: no look-ahead at first
def test_prompt_tree_distributions_equal_full_forwards(family, prompt, request):
    """PromptTree.next_probs level by level (with and without the look-ahead) against one full forward over
    prompt + prefix each; probabilities to 1e-6."""
    import torch

    from realmodels.evaluate.hf_judge import PromptTree

    hf = judge(request.getfixturevalue(family), shared=True)
    tree = PromptTree(hf._model, prompt, hf._digit_ids, "cpu")
    for level in ([""], list("0123456789"), [str(n) for n in range(10, 20)], ["100"]):
        probs = tree.next_probs(level)
        for prefix, row in zip(level, probs, strict=True):
            ids = prompt + [hf._digit_ids[int(d)] for d in prefix]
            with torch.no_grad():
                full = torch.softmax(hf._model(torch.tensor([ids])).logits[0, -1].double(), dim=-1)
            assert torch.allclose(row, full, rtol=0, atol=1e-6), (prefix, float((row - full).abs().max()))
    assert not tree.ready  # every look-ahead result was read
