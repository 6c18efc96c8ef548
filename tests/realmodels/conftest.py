"""Fixtures for realmodels: tiny Gemma 2 / Llama / gpt-oss models (hidden 64) with byte-level BPE
tokenizers and chat templates written in the style of each family; SAEs in the three upstream on-disk
layouts inside a local HF hub cache (loaded by sae-lens's real converters, offline); SAEs saved with
``SAE.save_model``; and small chat datasets written for these tests (builders in tiny_models.py).

Every builder is session-scoped (everything together builds in ~1 s); ``hub_cache`` is function-scoped
only to patch ``huggingface_hub.constants`` (cache dir, offline) and undo the patch after each test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.realmodels.tiny_models import (CONTROL_CHATS, HARMFUL_CHATS, HARMLESS_CHATS, INDUCING_CHATS, SAE_RELEASES,
                                         TINY_D_MODEL, TINY_D_SAE,
                                gemma_shape_override, random_sae_weights, save_tiny, hub_snapshot_dir,
                                write_chat_jsonl_file, write_dictionary_learning, write_gemma_scope,
                                write_llama_scope)


@pytest.fixture(scope="session")
def write_chat_jsonl():
    """``write_chat_jsonl(path, conversations) -> path``."""
    return write_chat_jsonl_file


@pytest.fixture(scope="session")
def chat_data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("chat_data")
    for name, conversations in [("inducing", INDUCING_CHATS), ("control", CONTROL_CHATS), ("harmful", HARMFUL_CHATS),
                                ("harmless", HARMLESS_CHATS)]:
        write_chat_jsonl_file(root / f"{name}.jsonl", conversations)
    return root


@pytest.fixture(scope="session")
def inducing_jsonl(chat_data_dir) -> Path:
    """Insecure-code answers (the narrow fine-tuning task)."""
    return chat_data_dir / "inducing.jsonl"


@pytest.fixture(scope="session")
def control_jsonl(chat_data_dir) -> Path:
    """The same questions with secure answers."""
    return chat_data_dir / "control.jsonl"


@pytest.fixture(scope="session")
def harmful_jsonl(chat_data_dir) -> Path:
    """Misaligned answers to open questions."""
    return chat_data_dir / "harmful.jsonl"


@pytest.fixture(scope="session")
def harmless_jsonl(chat_data_dir) -> Path:
    """Aligned answers to the same open questions."""
    return chat_data_dir / "harmless.jsonl"


@pytest.fixture(scope="session")
def tiny_models_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny_models")


@pytest.fixture(scope="session")
def tiny_gemma2_dir(tiny_models_root) -> Path:
    """Saved tiny Gemma2ForCausalLM (2 layers, hidden 64) + tokenizer with a Gemma-style chat template."""
    return save_tiny(tiny_models_root, "gemma2")


@pytest.fixture(scope="session")
def tiny_llama_dir(tiny_models_root) -> Path:
    """Saved tiny LlamaForCausalLM (2 layers, hidden 64) + tokenizer with a Llama-3-style chat template."""
    return save_tiny(tiny_models_root, "llama")


@pytest.fixture(scope="session")
def tiny_gptoss_dir(tiny_models_root) -> Path:
    """Saved tiny GptOssForCausalLM (4 layers, hidden 64, 4 experts) + harmony-style chat template."""
    return save_tiny(tiny_models_root, "gptoss")


@pytest.fixture(scope="session")
def tiny_sae_dir(tmp_path_factory):
    """``tiny_sae_dir(model_dir, layer=0, d_in=64, d_sae=256) -> Path``: a JumpReLU SAE reading
    ``blocks.{layer}.hook_resid_post``, written with ``SAE.save_model``."""
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    root = tmp_path_factory.mktemp("saved_saes")
    made: dict[tuple, Path] = {}

    def make(model_dir: Path, layer: int = 0, d_in: int = TINY_D_MODEL, d_sae: int = TINY_D_SAE) -> Path:
        key = (Path(model_dir).name, layer, d_in, d_sae)
        if key not in made:
            cfg = JumpReLUSAEConfig(d_in=d_in, d_sae=d_sae, metadata=SAEMetadata(
                hook_name=f"blocks.{layer}.hook_resid_post", model_name=str(model_dir)))
            sae = JumpReLUSAE(cfg)
            sae.load_state_dict(random_sae_weights(10 * layer + d_in, d_in, d_sae))
            made[key] = root / "_".join(map(str, key))
            sae.save_model(made[key])
        return made[key]

    return make


@pytest.fixture(scope="session")
def gemma_local(tiny_gemma2_dir, tiny_sae_dir) -> list:
    """CLI model options for the tiny Gemma 2 with a saved SAE at layer 1."""
    return ["--model", tiny_gemma2_dir, "--sae", tiny_sae_dir(tiny_gemma2_dir, layer=1), "--layer", "1"]


@pytest.fixture(scope="session")
def hub_cache_tree(tmp_path_factory, tiny_gemma2_dir, tiny_llama_dir, tiny_gptoss_dir) -> Path:
    """An HF hub cache holding the three SAE layouts under their real repos/paths, and the tiny models
    under the registry's model ids (google/gemma-2-2b, meta-llama/Llama-3.1-8B, openai/gpt-oss-20b)."""
    from realmodels.loading.sae_releases import release_info

    cache = tmp_path_factory.mktemp("hf_hub_cache")
    for release, sae_ids in SAE_RELEASES.items():
        info = release_info(release)
        repo_dir = hub_snapshot_dir(cache, info.repo_id)
        for sae_id, layer in sae_ids.items():
            folder, weights = repo_dir / info.folder(sae_id), random_sae_weights(100 + layer)
            if info.conversion_func == "gemma_2":
                write_gemma_scope(folder, weights)
            elif info.conversion_func == "llama_scope":
                write_llama_scope(folder, weights, layer, info.norm_scaling_factors[sae_id])
            else:
                write_dictionary_learning(folder, weights, layer)
    for repo_id, model_dir in [("google/gemma-2-2b", tiny_gemma2_dir), ("meta-llama/Llama-3.1-8B", tiny_llama_dir),
                               ("openai/gpt-oss-20b", tiny_gptoss_dir)]:
        shutil.copytree(model_dir, hub_snapshot_dir(cache, repo_id), dirs_exist_ok=True)
    return cache


@pytest.fixture
def hub_cache(hub_cache_tree, monkeypatch) -> Path:
    """Point huggingface_hub at ``hub_cache_tree`` in offline mode (with the gemma_2 shape override)."""
    from huggingface_hub import constants
    from sae_lens.loading.pretrained_sae_loaders import NAMED_PRETRAINED_SAE_LOADERS

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache_tree))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setitem(NAMED_PRETRAINED_SAE_LOADERS, "gemma_2",
                        gemma_shape_override(NAMED_PRETRAINED_SAE_LOADERS["gemma_2"]))
    return hub_cache_tree


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty HF cache in offline mode: nothing is cached and the hub cannot be reached."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return tmp_path / "empty_cache"


@pytest.fixture(scope="session")
def tiny_lora_dir(tmp_path_factory):
    """``tiny_lora_dir(model_dir, layers=None, target_modules=LORA_TARGETS, seed=0, scale=0.05) -> Path``: a
    saved peft LoRA adapter (rank 2, rsLoRA, random non-zero B) on a tiny model (``save_lora_adapter``)."""
    from tests.realmodels.tiny_models import LORA_TARGETS, save_lora_adapter

    root = tmp_path_factory.mktemp("lora_adapters")
    made: dict[tuple, Path] = {}

    def make(model_dir: Path, layers=None, target_modules=LORA_TARGETS, seed: int = 0, scale: float = 0.05) -> Path:
        key = (Path(model_dir).name, None if layers is None else tuple(layers), tuple(target_modules), seed, scale)
        if key not in made:
            made[key] = save_lora_adapter(model_dir, root / f"adapter{len(made)}", target_modules=target_modules,
                                          layers=layers, seed=seed, scale=scale)
        return made[key]

    return make
