"""realmodels.loading.adapters and its use by bundles and sessions: a peft adapter directory is checked against
the base model from files alone (format, recorded base, layers); loaded merged or not it gives the same model;
the LoRA deltas are what merging adds; a bundle with an adapter never shares cache keys with the base model."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from realmodels.data.activations import cache_key
from realmodels.data.residual import residual_stream
from realmodels.loading.adapters import adapter_deltas, adapter_fingerprint, load_adapter, resolve_adapter
from realmodels.loading.bundle import ModelSource, load_bundle, resolve_sources
from realmodels.loading.session import ModelChoice, Session
from theory.errors import InputError

N_LAYERS = 2  # the tiny models'


def source(model_dir) -> ModelSource:
    return ModelSource(path=model_dir.resolve())


def edited_copy(adapter_dir, target, **changes):
    """A copy of ``adapter_dir`` whose adapter_config.json has ``changes``."""
    shutil.copytree(adapter_dir, target)
    config = json.loads((target / "adapter_config.json").read_text())
    (target / "adapter_config.json").write_text(json.dumps({**config, **changes}))
    return target


# ------------------------------------------------------------------------------------------ resolve_adapter
def test_a_peft_directory_is_accepted(tiny_gemma2_dir, tiny_lora_dir):
    adapter = resolve_adapter(tiny_lora_dir(tiny_gemma2_dir), source(tiny_gemma2_dir), N_LAYERS)
    assert adapter.path == tiny_lora_dir(tiny_gemma2_dir).resolve()
    assert adapter.peft_type == "LORA" and adapter.layers is None
    assert {"q_proj", "down_proj"} <= set(adapter.target_modules)


def test_a_finetune_run_directory_gives_its_adapter(tmp_path, tiny_gemma2_dir, tiny_lora_dir):
    shutil.copytree(tiny_lora_dir(tiny_gemma2_dir), tmp_path / "run" / "adapter")
    (tmp_path / "run" / "config.json").write_text("{}")  # the run's own config, not a model's
    adapter = resolve_adapter(tmp_path / "run", source(tiny_gemma2_dir), N_LAYERS)
    assert adapter.path == (tmp_path / "run" / "adapter").resolve()


def test_a_copy_of_the_base_model_elsewhere_is_the_same_base(tmp_path, tiny_gemma2_dir, tiny_lora_dir):
    copy = shutil.copytree(tiny_gemma2_dir, tmp_path / "elsewhere" / "gemma")
    assert resolve_adapter(tiny_lora_dir(tiny_gemma2_dir), source(copy), N_LAYERS).peft_type == "LORA"


def test_layers_the_model_lacks_are_refused(tmp_path, tiny_gemma2_dir, tiny_lora_dir):
    adapter_dir = edited_copy(tiny_lora_dir(tiny_gemma2_dir, layers=[1]), tmp_path / "a", layers_to_transform=[1, 5])
    with pytest.raises(InputError, match=r"transforms layers \[1, 5\], but .* has 2 layers"):
        resolve_adapter(adapter_dir, source(tiny_gemma2_dir), N_LAYERS)
    assert resolve_adapter(tiny_lora_dir(tiny_gemma2_dir, layers=[1]), source(tiny_gemma2_dir), N_LAYERS).layers == (1,)


def test_an_adapter_of_another_base_model_names_both(tiny_gemma2_dir, tiny_llama_dir, tiny_lora_dir):
    with pytest.raises(InputError, match="was trained on base model") as error:
        resolve_adapter(tiny_lora_dir(tiny_llama_dir), source(tiny_gemma2_dir), N_LAYERS)
    assert str(tiny_llama_dir) in str(error.value) and str(tiny_gemma2_dir.resolve()) in str(error.value)


@pytest.mark.parametrize(("layout", "message"), [
    ("missing", "does not exist"),
    ("empty", "is not in peft's format (no adapter_config.json"),
    ("config_only", "is not in peft's format (no adapter_model.safetensors or adapter_model.bin)"),
    ("bad_json", "is not valid JSON"),
    ("full_run", "is a full fine-tuning run (no adapter): pass `model`"),
])
def test_bad_adapter_directories(tmp_path, tiny_gemma2_dir, tiny_lora_dir, layout, message):
    path = tmp_path / "adapter"
    if layout != "missing":
        path.mkdir()
    if layout == "config_only":
        shutil.copy(tiny_lora_dir(tiny_gemma2_dir) / "adapter_config.json", path)
    if layout == "bad_json":
        shutil.copy(tiny_lora_dir(tiny_gemma2_dir) / "adapter_model.safetensors", path)
        (path / "adapter_config.json").write_text("{not json")
    if layout == "full_run":
        shutil.copytree(tiny_gemma2_dir, path / "model")
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_adapter(path, source(tiny_gemma2_dir), N_LAYERS)


# ------------------------------------------------------------------------------------------ loading, deltas
def _base(model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir).eval()


def test_merged_and_unmerged_give_the_same_residuals_and_differ_from_the_base(tiny_gemma2_dir, tiny_lora_dir):
    adapter = resolve_adapter(tiny_lora_dir(tiny_gemma2_dir), source(tiny_gemma2_dir), N_LAYERS)
    input_ids = torch.randint(3, 200, (2, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(input_ids)
    base = residual_stream(_base(tiny_gemma2_dir), input_ids, mask, 1)
    merged_model = load_adapter(_base(tiny_gemma2_dir), adapter, merge=True)
    peft_model = load_adapter(_base(tiny_gemma2_dir), adapter, merge=False)
    assert not hasattr(merged_model, "disable_adapter")  # the plain model
    merged = residual_stream(merged_model, input_ids, mask, 1)
    unmerged = residual_stream(peft_model, input_ids, mask, 1)
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=1e-5)
    assert (merged - base).abs().max() > 1e-3
    with peft_model.disable_adapter():
        torch.testing.assert_close(residual_stream(peft_model, input_ids, mask, 1), base, atol=1e-6, rtol=1e-6)


def test_merging_adds_the_deltas(tiny_gemma2_dir, tiny_lora_dir):
    adapter = resolve_adapter(tiny_lora_dir(tiny_gemma2_dir, layers=[0]), source(tiny_gemma2_dir), N_LAYERS)
    deltas = adapter_deltas(load_adapter(_base(tiny_gemma2_dir), adapter, merge=False))
    base = _base(tiny_gemma2_dir).state_dict()
    merged = load_adapter(_base(tiny_gemma2_dir), adapter, merge=True).state_dict()
    assert deltas and all(".layers.0." in name for name in deltas)  # layers_to_transform=[0]
    for name, delta in deltas.items():
        weight = name.replace(".base_layer.weight", ".weight")
        assert delta.abs().max() > 0
        torch.testing.assert_close(merged[weight], base[weight] + delta, atol=1e-6, rtol=1e-6)


# ------------------------------------------------------------------------------------------ bundles, sessions
def test_a_bad_adapter_fails_when_the_sources_resolve(tiny_gemma2_dir, tiny_llama_dir, tiny_sae_dir, tiny_lora_dir):
    with pytest.raises(InputError, match="was trained on base model"):
        resolve_sources(model_path=tiny_gemma2_dir, sae_path=tiny_sae_dir(tiny_gemma2_dir, layer=1), layer=1,
                        adapter=tiny_lora_dir(tiny_llama_dir))


def test_a_bundle_with_an_adapter_has_its_own_cache_keys(tiny_gemma2_dir, tiny_sae_dir, tiny_lora_dir):
    common = dict(model_path=tiny_gemma2_dir, sae_path=tiny_sae_dir(tiny_gemma2_dir, layer=1), layer=1)
    adapter_dir = tiny_lora_dir(tiny_gemma2_dir)
    base = load_bundle(**common)
    merged = load_bundle(**common, adapter=adapter_dir)
    unmerged = load_bundle(**common, adapter=adapter_dir, merge_adapter=False)
    other = load_bundle(**common, adapter=tiny_lora_dir(tiny_gemma2_dir, seed=1))
    assert base.adapter is None and merged.adapter.path == adapter_dir.resolve()
    # the base model's name and fingerprint plus the adapter's (realmodels.analysis.amplification strips these)
    assert merged.model_name == f"{base.model_name} + adapter {adapter_dir.resolve()}"
    assert merged.fingerprint == f"{base.fingerprint};adapter:{adapter_fingerprint(merged.adapter)}"
    assert not hasattr(merged.model, "disable_adapter") and hasattr(unmerged.model, "disable_adapter")
    keys = [json.dumps(cache_key(bundle, "sha", 64), sort_keys=True) for bundle in (base, merged, other)]
    assert len(set(keys)) == 3
    assert cache_key(unmerged, "sha", 64) == cache_key(merged, "sha", 64)  # the same fine-tuned model


def test_the_adapter_is_in_the_run_config_only_when_given(tmp_path, tiny_gemma2_dir, tiny_sae_dir, tiny_lora_dir,
                                                         monkeypatch):
    shutil.copytree(tiny_lora_dir(tiny_gemma2_dir), tmp_path / "run" / "adapter")
    monkeypatch.chdir(tmp_path)
    choice = dict(model=str(tiny_gemma2_dir), sae=str(tiny_sae_dir(tiny_gemma2_dir, layer=1)), layer=1)
    assert "adapter" not in ModelChoice(**choice).to_config()  # configs of runs without one are unchanged
    session = Session(ModelChoice(**choice, adapter="run"), merge_adapter=False)
    assert session.choice.to_config()["adapter"] == str((tmp_path / "run").resolve())
    assert session.sources.adapter.path == (tmp_path / "run" / "adapter").resolve()
    assert "bundle" not in session.__dict__  # checked, nothing loaded
    assert hasattr(session.bundle.model, "disable_adapter")  # merge_adapter=False reaches the bundle
