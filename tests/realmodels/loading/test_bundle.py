"""load_bundle: registry checkpoints from the local hub cache, local model + SAE pairs, and every bad input."""

import time

import pytest
import torch

from realmodels.loading import memory
from realmodels.loading.bundle import ModelBundle, estimate_bundle_memory, load_bundle
from theory.errors import InputError

CHECKPOINTS = [
    ("gemma-2-2b", 1, "Gemma2ForCausalLM", "google/gemma-2-2b",
     "gemma-scope-2b-pt-res-canonical/layer_1/width_16k/canonical"),
    ("llama-3.1-8b", 1, "LlamaForCausalLM", "meta-llama/Llama-3.1-8B", "llama_scope_lxr_8x/l1r_8x"),
    ("gpt-oss-20b", 3, "GptOssForCausalLM", "openai/gpt-oss-20b", "gpt-oss-20b-andyrdt/resid_post_layer_3_trainer_0"),
]


@pytest.mark.parametrize(("checkpoint", "layer", "model_class", "model_name", "sae_name"), CHECKPOINTS,
                         ids=[c for c, *_ in CHECKPOINTS])
def test_checkpoint_loads_model_and_sae_from_the_hub_cache(hub_cache, checkpoint, layer, model_class, model_name,
                                                           sae_name):
    bundle = load_bundle(checkpoint=checkpoint, layer=layer, ignore_memory_check=True)
    assert isinstance(bundle, ModelBundle) and type(bundle.model).__name__ == model_class
    assert bundle.model.dtype == torch.bfloat16  # the checkpoint's default dtype
    assert (bundle.layer, bundle.d_model, bundle.d_sae) == (layer, 64, 256)
    assert bundle.sae.cfg.metadata.hook_name == f"blocks.{layer}.hook_resid_post"
    assert (bundle.model_name, bundle.sae_name) == (model_name, sae_name)
    assert "model:" in bundle.fingerprint and len(bundle.fingerprint) > 60  # both snapshot commits
    assert not bundle.model.training and bundle.tokenizer.chat_template


def test_local_model_and_saved_sae(tiny_llama_dir, tiny_sae_dir):
    bundle = load_bundle(model_path=tiny_llama_dir, sae_path=tiny_sae_dir(tiny_llama_dir, layer=1), layer=1,
                         dtype="float32")
    assert bundle.model_name == str(tiny_llama_dir.resolve()) and bundle.model.dtype == torch.float32
    assert bundle.sae_name == str(tiny_sae_dir(tiny_llama_dir, layer=1))
    assert bundle.fingerprint.startswith("model:") and ";sae:" in bundle.fingerprint


def test_local_model_with_a_release_sae(hub_cache, tiny_gemma2_dir):
    bundle = load_bundle(model_path=tiny_gemma2_dir, sae_release="gemma-scope-2b-pt-res-canonical",
                         sae_id="layer_0/width_16k/canonical", layer=0)
    assert bundle.sae_name == "gemma-scope-2b-pt-res-canonical/layer_0/width_16k/canonical"


def test_chat_template_file_replaces_the_tokenizers(tiny_llama_dir, tiny_sae_dir, tmp_path):
    template = tmp_path / "template.jinja"
    template.write_text("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}")
    bundle = load_bundle(model_path=tiny_llama_dir, sae_path=tiny_sae_dir(tiny_llama_dir), layer=0,
                         chat_template=template)
    assert bundle.tokenizer.chat_template == template.read_text()
    with pytest.raises(InputError, match="chat template file .* does not exist"):
        load_bundle(model_path=tiny_llama_dir, sae_path=tiny_sae_dir(tiny_llama_dir), layer=0,
                    chat_template=tmp_path / "missing.jinja")


def test_sae_at_another_layer_is_rejected(tiny_gemma2_dir, tiny_sae_dir):
    with pytest.raises(InputError, match=r"reads blocks.1.hook_resid_post \(layer 1\), but layer 0 was requested"):
        load_bundle(model_path=tiny_gemma2_dir, sae_path=tiny_sae_dir(tiny_gemma2_dir, layer=1), layer=0)


def test_sae_width_mismatch_is_rejected(tiny_gemma2_dir, tiny_sae_dir):
    with pytest.raises(InputError, match="reads vectors of size d_in=32, but model .* has hidden size 64"):
        load_bundle(model_path=tiny_gemma2_dir, sae_path=tiny_sae_dir(tiny_gemma2_dir, layer=0, d_in=32), layer=0)


def test_layer_beyond_the_model_is_rejected(tiny_gemma2_dir, tiny_sae_dir):
    with pytest.raises(InputError, match=r"layer 5 is out of range: model .* has layers 0..1"):
        load_bundle(model_path=tiny_gemma2_dir, sae_path=tiny_sae_dir(tiny_gemma2_dir, layer=5), layer=5)


def test_checkpoint_layer_without_sae(hub_cache):
    with pytest.raises(InputError, match="no SAE at layer 11 .*layers with an SAE: 10, 22, 34"):
        load_bundle(checkpoint="gemma-2-27b", layer=11)


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(checkpoint="gemma-2b", layer=1), "unknown checkpoint 'gemma-2b'.*valid checkpoints: gemma-2-2b"),
    (dict(checkpoint="gemma-2-2b", layer=-1), "layer must be >= 0"),
    (dict(checkpoint="gemma-2-2b", layer=1, dtype="fp8"), "unknown dtype 'fp8'; valid dtypes: auto, float32"),
    (dict(model_path="./no/such/dir", sae_path=".", layer=0), "model path ./no/such/dir does not exist"),
    (dict(sae_release="gemma-scope-2b-pt-res-canonical", sae_id="layer_0/width_16k/canonical", layer=0),
     "no model given"),
])
def test_bad_arguments_are_one_line_errors(hub_cache, kwargs, message):
    with pytest.raises(InputError, match=message) as error:
        load_bundle(**kwargs)
    assert "\n" not in str(error.value)


def test_nothing_cached_and_no_hub_fails_fast_with_download_hint(empty_hub_cache):
    start = time.perf_counter()
    with pytest.raises(InputError) as error:
        load_bundle(checkpoint="gemma-2-2b", layer=12, ignore_memory_check=True)
    assert time.perf_counter() - start < 5.0
    message = str(error.value)
    assert "\n" not in message and "SAE gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical" in message
    assert "`hf download google/gemma-scope-2b-pt-res --include 'layer_12/width_16k/average_l0_82/*'`" in message
    assert "`model` PATH `sae` PATH `layer` L" in message


def test_model_missing_from_cache_names_the_model(hub_cache, tiny_sae_dir, tiny_gemma2_dir):
    with pytest.raises(InputError, match="model google/gemma-2-9b is not in the Hugging Face cache.*hf download "
                                         "google/gemma-2-9b"):
        load_bundle(model_path="google/gemma-2-9b", sae_path=tiny_sae_dir(tiny_gemma2_dir), layer=0)


def test_oversize_cpu_load_is_refused_before_loading(hub_cache, monkeypatch):
    monkeypatch.setattr(memory, "available_ram_gb", lambda: 1.0)
    monkeypatch.setattr("realmodels.loading.bundle.load_sae",
                        lambda *a, **k: pytest.fail("loaded before the memory check"))
    estimate = estimate_bundle_memory(checkpoint="gemma-2-2b", layer=1)
    assert estimate.model_gb == pytest.approx(5.229, abs=1e-3)  # 2.61e9 params in bfloat16
    assert estimate.sae_gb == pytest.approx(3 * 2304 * 16384 * 4 / 1e9)
    with pytest.raises(InputError, match=r"on CPU needs ~5.7 GB .* 1.0 GB RAM available.*`ignore_memory_check`"):
        load_bundle(checkpoint="gemma-2-2b", layer=1)
    on_gpu = estimate_bundle_memory(checkpoint="gemma-2-2b", layer=1, device_map="auto")
    assert not on_gpu.on_cpu


def test_local_estimate_counts_safetensors_parameters(tiny_gemma2_dir, tiny_sae_dir):
    from transformers import AutoModelForCausalLM

    n_params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny_gemma2_dir).parameters())
    estimate = estimate_bundle_memory(model_path=tiny_gemma2_dir, sae_path=tiny_sae_dir(tiny_gemma2_dir), layer=0)
    assert estimate.model_gb == pytest.approx(n_params * 4 / 1e9)  # float32 as saved
    assert estimate.sae_gb == pytest.approx(3 * 64 * 256 * 4 / 1e9)
