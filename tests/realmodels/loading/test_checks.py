"""realmodels.loading.checks: a model's sizes from its config.json (local, hub cache, registry) and the layer /
SAE checks that run on them before any weights load; the session's default max length."""

from __future__ import annotations

import json
from typing import get_args

import pytest

from realmodels.analysis import configs
from realmodels.loading.checks import ModelShape, model_shape
from realmodels.loading.registry import get_checkpoint
from realmodels.loading.session import DEFAULT_MAX_LENGTH, ModelChoice, Session
from theory import selection, stats
from theory.errors import InputError


def test_shape_from_a_local_config_and_a_nested_text_config(tiny_gemma2_dir, tmp_path):
    assert model_shape(tiny_gemma2_dir, None, None) == ModelShape(hidden_size=64, n_layers=2, context=512)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vlm", "text_config": {
        "hidden_size": 128, "num_hidden_layers": 3, "max_position_embeddings": 4096}}))
    assert model_shape(tmp_path, None, None) == ModelShape(128, 3, 4096)
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(InputError, match="config.json is not valid JSON"):
        model_shape(tmp_path, None, None)


def _empty_cache(monkeypatch, tmp_path) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))


def test_shape_from_the_hub_cache_else_the_registry(hub_cache, monkeypatch, tmp_path):
    spec = get_checkpoint("gemma-2-2b")
    assert model_shape(None, spec.model_id, spec) == ModelShape(64, 2, 512)  # the tiny model cached under the id
    _empty_cache(monkeypatch, tmp_path)
    assert model_shape(None, spec.model_id, spec) == ModelShape(2304, 26, 8192)


def test_a_checkpoint_layer_beyond_the_cached_config_fails_without_loading(hub_cache, monkeypatch):
    monkeypatch.setattr("realmodels.loading.bundle.load_sae", lambda *a, **k: pytest.fail("loaded the SAE"))
    with pytest.raises(InputError, match="layer 3 is out of range: model google/gemma-2-2b has layers 0..1"):
        Session(ModelChoice(checkpoint="gemma-2-2b", layer=3))


def test_default_max_length_is_the_context_capped(tiny_gemma2_dir, tiny_sae_dir, hub_cache, monkeypatch, tmp_path):
    local = dict(model=str(tiny_gemma2_dir), sae=str(tiny_sae_dir(tiny_gemma2_dir, layer=1)), layer=1)
    assert Session(ModelChoice(**local)).max_length == 512  # the tiny model's context
    assert Session(ModelChoice(**local, max_length=100)).max_length == 100
    with pytest.raises(InputError, match="`max_length` 600 exceeds the context of model .* \\(512 tokens\\)"):
        Session(ModelChoice(**local, max_length=600))
    _empty_cache(monkeypatch, tmp_path)
    assert Session(ModelChoice(checkpoint="gemma-2-2b", layer=0)).max_length == DEFAULT_MAX_LENGTH  # 8192 capped


def test_config_names_match_the_theory_they_are_passed_to():
    assert get_args(configs.Criterion) == selection.CRITERIA
    assert get_args(configs.Alternative) == get_args(stats.Alternative)
