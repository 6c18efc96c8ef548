"""The snippet scan on a tiny Llama + SAE equals a direct per-conversation computation (one unpadded forward pass
each): every feature's top conversations, their max assistant token and value, the window's activations, and the
histogram's non-zero values and token count — whatever the batch size."""

from __future__ import annotations

import pytest
import torch

from realmodels.data.dataset import Dataset
from realmodels.interpret.examples import scan_dataset
from realmodels.loading.bundle import load_bundle


@pytest.fixture(scope="module")
def bundle(tiny_llama_dir, tiny_sae_dir):
    return load_bundle(model_path=tiny_llama_dir, sae_path=tiny_sae_dir(tiny_llama_dir, layer=0), layer=0,
                       dtype="float32")


def direct(bundle, chats, features):
    """Per conversation: the codes (n_tokens, n_features) of every token, from its own forward pass."""
    out = []
    with torch.no_grad():
        for chat in chats:
            hidden = bundle.model(input_ids=chat.input_ids[None], output_hidden_states=True).hidden_states[1][0]
            out.append(bundle.sae.encode(hidden)[:, features])
    return out


@pytest.mark.parametrize("batch_size", [1, 4])
def test_scan_equals_a_direct_computation(bundle, harmful_jsonl, batch_size):
    dataset = Dataset.open(harmful_jsonl)
    chats = dataset.tokenized(bundle.tokenizer, None)
    acts = direct(bundle, chats, list(range(bundle.d_sae)))
    on_assistant = torch.cat([a[c.assistant_mask] for a, c in zip(acts, chats)])
    by_rate = torch.argsort(-(on_assistant > 0).sum(0), stable=True)
    features = [int(i) for i in (*by_rate[:3], by_rate[-1])]  # the three busiest features and the quietest
    context = 3
    scan = scan_dataset(bundle, chats, features, n_examples=2, context=context, batch_size=batch_size,
                        line_numbers=list(dataset.line_numbers))
    assert scan["n_tokens"] == int(sum(c.assistant_mask.sum() for c in chats)) == on_assistant.shape[0]
    for entry, feature in zip(scan["features"], features):
        column = on_assistant[:, feature]
        assert entry["feature"] == feature
        assert sorted(entry["nonzero"]) == pytest.approx(sorted(column[column != 0].tolist()), abs=1e-5)
        best = []
        for sample, (a, chat) in enumerate(zip(acts, chats)):
            values = a[:, feature].masked_fill(~chat.assistant_mask, float("-inf"))
            if values.max() > 0:
                best.append((-float(values.max()), sample, int(values.argmax())))
        best = sorted(best)[:2]
        assert [(e["sample"], e["position"]) for e in entry["examples"]] == [(s, p) for _, s, p in best]
        for example, (neg, sample, position) in zip(entry["examples"], best):
            assert example["value"] == pytest.approx(-neg, abs=1e-5)
            start, stop = max(0, position - context), min(len(chats[sample].input_ids), position + context + 1)
            assert example["start"] == start and example["token_ids"] == chats[sample].input_ids[start:stop].tolist()
            assert example["acts"] == pytest.approx(acts[sample][start:stop, feature].tolist(), abs=1e-5)
            assert example["assistant"] == chats[sample].assistant_mask[start:stop].tolist()
            assert example["line"] == dataset.line_numbers[sample]
            assert len(example["tokens"]) == stop - start
