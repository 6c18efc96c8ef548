"""realmodels.analysis.direction: the direction file (round trip, every bad file one InputError line) and
``ablated`` on the tiny Llama: the residual after the layer is orthogonal to the direction inside the context
(plain forward, peft-wrapped, every step of a KV-cached ``generate``), the layers below are untouched, and
everything is back to normal after exit."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from realmodels.analysis.direction import Direction, ablated, load_direction, save_direction
from theory.errors import InputError

D = 64  # TINY_D_MODEL
LAYER = 0


def _direction(seed: int = 0, layer: int = LAYER, d: int = D) -> Direction:
    vector = torch.randn(d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return Direction(layer=layer, vector=(5.0 * vector).tolist(), note="test direction")


def _unit(direction: Direction) -> torch.Tensor:
    u = torch.tensor(direction.vector, dtype=torch.float32)
    return u / u.norm()


@pytest.fixture(scope="module")
def llama(tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    _hidden(model, _ids())  # transformers installs its output-capturing hooks on the first call
    return model


def _ids(n: int = 7, batch: int = 2) -> torch.Tensor:
    return torch.randint(3, 100, (batch, n), generator=torch.Generator().manual_seed(1))


def _hidden(model, ids) -> tuple[torch.Tensor, ...]:
    with torch.inference_mode():
        return model(input_ids=ids, output_hidden_states=True, use_cache=False).hidden_states


# ------------------------------------------------------------------------------------------------ the file

def test_save_and_load_round_trip(tmp_path):
    direction = _direction()
    save_direction(tmp_path / "dir.json", direction)
    data = json.loads((tmp_path / "dir.json").read_text())
    assert set(data) == {"layer", "d_model", "vector", "note"} and data["d_model"] == D
    assert load_direction(tmp_path / "dir.json") == direction


def test_note_is_optional(tmp_path):
    (tmp_path / "d.json").write_text(json.dumps({"layer": 1, "d_model": 2, "vector": [1, 0]}))
    assert load_direction(tmp_path / "d.json") == Direction(layer=1, vector=[1.0, 0.0])


GOOD = {"layer": 0, "d_model": 3, "vector": [1.0, 2.0, 3.0], "note": ""}


@pytest.mark.parametrize("text, match", [
    (None, "does not exist"),
    ("{oops", "is not valid JSON"),
    ("[1, 2]", "must hold a JSON object"),
    (json.dumps({**GOOD, "layers": 1}), "unknown key(s) layers"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "d_model"}), "missing key(s) d_model"),
    (json.dumps({**GOOD, "vector": [0.0, 0.0, 0.0]}), "zero vector"),
    ('{"layer": 0, "d_model": 3, "vector": [1.0, NaN, 3.0]}', "NaN or infinite"),
    ('{"layer": 0, "d_model": 3, "vector": [1.0, Infinity, 3.0]}', "NaN or infinite"),
    (json.dumps({**GOOD, "vector": []}), "non-empty list of numbers"),
    (json.dumps({**GOOD, "vector": [1.0, "2", 3.0]}), "non-empty list of numbers"),
    (json.dumps({**GOOD, "vector": [1.0, True, 3.0]}), "non-empty list of numbers"),
    (json.dumps({**GOOD, "d_model": 4}), "d_model is 4 but the vector has 3 entries"),
    (json.dumps({**GOOD, "layer": -1}), "layer must be an integer >= 0"),
    (json.dumps({**GOOD, "layer": 1.5}), "layer must be an integer >= 0"),
    (json.dumps({**GOOD, "note": 3}), "note must be a string"),
])
def test_bad_direction_files_are_one_line(tmp_path, text, match):
    path = tmp_path / "dir.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(InputError) as info:
        load_direction(path)
    assert match in str(info.value) and "\n" not in str(info.value) and str(path) in str(info.value)


def test_a_zero_direction_is_not_saved(tmp_path):
    with pytest.raises(InputError, match="zero vector"):
        save_direction(tmp_path / "d.json", Direction(layer=0, vector=[0.0, 0.0]))
    assert not (tmp_path / "d.json").exists()


# --------------------------------------------------------------------------------------------- ablation

def _hooks(model) -> list[int]:
    """Forward hooks per decoder layer (transformers installs its own output-capturing ones)."""
    return [len(layer._forward_hooks) for layer in model.model.layers]


def test_the_residual_after_the_layer_is_orthogonal_inside_and_unchanged_after(llama):
    hooks = _hooks(llama)
    direction, ids = _direction(), _ids()
    u = _unit(direction)
    before = _hidden(llama, ids)
    assert float((before[LAYER + 1] @ u).abs().max()) > 1e-2  # there is something to remove
    with ablated(llama, direction) as model:
        assert model is llama
        inside = _hidden(llama, ids)
    after = _hidden(llama, ids)
    torch.testing.assert_close(inside[LAYER + 1] @ u, torch.zeros(ids.shape), rtol=0, atol=1e-5)
    expected = before[LAYER + 1] - (before[LAYER + 1] @ u)[..., None] * u
    torch.testing.assert_close(inside[LAYER + 1], expected, rtol=0, atol=1e-5)
    for below in range(LAYER + 1):
        torch.testing.assert_close(inside[below], before[below], rtol=0, atol=0)
    assert not torch.allclose(inside[-1], before[-1])  # the layers above see the ablated residual
    for a, b in zip(after, before):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert _hooks(llama) == hooks


def test_the_hook_is_removed_when_the_body_raises(llama):
    hooks = _hooks(llama)
    with pytest.raises(RuntimeError, match="boom"):
        with ablated(llama, _direction()):
            raise RuntimeError("boom")
    assert _hooks(llama) == hooks


def test_a_direction_the_model_cannot_take_is_an_input_error(llama):
    hooks = _hooks(llama)
    with pytest.raises(InputError, match="layer 2 is out of range: the model has layers 0..1"):
        with ablated(llama, _direction(layer=2)):
            pass
    with pytest.raises(InputError, match="d_model=32, but the model's hidden size is 64"):
        with ablated(llama, _direction(d=32)):
            pass
    assert _hooks(llama) == hooks


def test_ablation_under_a_peft_wrapped_model(tiny_llama_dir, tiny_lora_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    model = PeftModel.from_pretrained(base, tiny_lora_dir(tiny_llama_dir)).eval()
    direction, ids = _direction(seed=3, layer=1), _ids()
    before = _hidden(model, ids)
    with ablated(model, direction):
        inside = _hidden(model, ids)
    # layer 1 is the last: hidden_states[2] is after the final norm, so read the layer's output itself
    torch.testing.assert_close(inside[1], before[1], rtol=0, atol=0)
    assert not torch.allclose(inside[2], before[2])
    direction0 = _direction(seed=3, layer=0)
    with ablated(model, direction0):
        inside0 = _hidden(model, ids)
    torch.testing.assert_close(inside0[1] @ _unit(direction0), torch.zeros(ids.shape), rtol=0, atol=1e-5)


def test_every_generated_token_is_ablated_with_a_kv_cache(llama):
    """A pre-hook on layer L+1 sees, at every generate step (prefill and each cached one-token step), a residual
    orthogonal to the direction; greedy tokens with and without the cache agree."""
    direction, u = _direction(seed=5), _unit(_direction(seed=5))
    ids = _ids(n=5, batch=1)
    seen: list[torch.Tensor] = []

    def record(module, args, kwargs):
        seen.append((args[0] if args else kwargs["hidden_states"]).detach().clone())

    handle = llama.model.layers[LAYER + 1].register_forward_pre_hook(record, with_kwargs=True)
    try:
        with ablated(llama, direction), torch.inference_mode():
            cached = llama.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                                    use_cache=True, pad_token_id=0)
    finally:
        handle.remove()
    assert len(seen) == 6 and seen[0].shape[1] == 5 and all(s.shape[1] == 1 for s in seen[1:])
    for residual in seen:
        assert float((residual @ u).abs().max()) < 1e-5
    with ablated(llama, direction), torch.inference_mode():
        uncached = llama.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                                  use_cache=False, pad_token_id=0)
    assert torch.equal(cached, uncached)
    with torch.inference_mode():
        plain = llama.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                               pad_token_id=0)
    assert plain.shape == cached.shape  # (the ablation's effect on tokens of a random model is not asserted)


class _TupleLayer(nn.Module):
    def forward(self, h):
        return h * 2.0, "extra"


class _TupleModel(nn.Module):
    """A decoder whose layers return (hidden, extra) tuples, like older transformers versions."""

    def __init__(self):
        super().__init__()
        self.model = nn.Module()
        self.model.layers = nn.ModuleList([_TupleLayer()])

    def forward(self, h):
        return self.model.layers[0](h)


def test_tuple_outputs_have_their_hidden_states_projected():
    model = _TupleModel()
    h = torch.randn(2, 3, 4, dtype=torch.bfloat16)
    direction = Direction(layer=0, vector=[1.0, 0.0, 0.0, 0.0])
    with ablated(model, direction):
        out, extra = model(h)
    assert extra == "extra" and out.dtype == torch.bfloat16
    torch.testing.assert_close(out[..., 0], torch.zeros(2, 3, dtype=torch.bfloat16), rtol=0, atol=0)
    torch.testing.assert_close(out[..., 1:], 2.0 * h[..., 1:], rtol=0, atol=0)
