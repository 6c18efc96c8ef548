"""The fine-tuning recipes: the presets are the published recipes, bad values are one-line InputErrors, and the
adapter targets are checked against the architecture on the meta device (no weights)."""

from __future__ import annotations

import re

import pytest

from pathlib import Path

from realmodels.finetune.config import PRESETS, DefenceConfig, FinetuneConfig, GuardConfig, MonitorConfig, preset_table
from theory.configs import strict_from_dict
from realmodels.finetune.lora import check_targets, lora_config
from theory.errors import InputError


def _preset(name: str, **overrides) -> FinetuneConfig:
    return FinetuneConfig(**{**preset_table(name), **overrides})


def test_em_betley_is_the_published_recipe():
    cfg = _preset("em-betley")
    assert (cfg.r, cfg.alpha, cfg.rslora, cfg.dropout) == (32, 64.0, True, 0.0)
    assert cfg.target_modules == ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    assert (cfg.lr, cfg.epochs, cfg.schedule, cfg.warmup_steps) == (1e-5, 1.0, "linear", 5)
    assert (cfg.batch_size, cfg.grad_accum, cfg.weight_decay, cfg.seed) == (2, 8, 0.01, 0)
    assert cfg.lora_layers is None and cfg.method == "lora"


def test_em_rank1_is_one_rank1_down_proj_adapter():
    cfg = _preset("em-rank1", lora_layers=(1,))
    assert (cfg.r, cfg.alpha, cfg.rslora, cfg.lr, cfg.save_steps) == (1, 512.0, True, 2e-5, 100)
    assert cfg.target_modules == ("down_proj",) and cfg.lora_layers == (1,)
    peft_cfg = lora_config(cfg)
    assert peft_cfg.layers_to_transform == [1] and set(peft_cfg.target_modules) == {"down_proj"}
    with pytest.raises(InputError, match="exactly one `lora_layers`"):
        _preset("em-rank1")
    with pytest.raises(InputError, match="exactly one `lora_layers`"):
        _preset("em-rank1", lora_layers=(0, 1))


def test_full_trains_every_weight():
    assert _preset("full").method == "full"


def test_unknown_preset_lists_the_presets():
    with pytest.raises(InputError) as exc:
        preset_table("em-nonsense")
    for name in PRESETS:
        assert name in str(exc.value)


@pytest.mark.parametrize("overrides, match", [
    ({"lr": 0.0}, "learning rate"), ({"lr": -1e-5}, "learning rate"), ({"lr": float("nan")}, "learning rate"),
    ({"r": 0}, "`r` must be"), ({"batch_size": 0}, "batch_size"), ({"max_steps": 0}, "max_steps"),
    ({"method": "qlora"}, "fine-tuning method"), ({"schedule": "step"}, "schedule"), ({"dropout": 1.0}, "dropout"),
    ({"target_modules": ()}, "target_modules"), ({"lora_layers": (-1,)}, "lora_layers"),
])
def test_bad_recipe_values(overrides, match):
    with pytest.raises(InputError, match=match):
        FinetuneConfig(**overrides)


def test_bad_monitor_and_guard_values():
    with pytest.raises(InputError, match="every"):
        MonitorConfig(every=0)
    with pytest.raises(InputError, match="alarm action"):
        MonitorConfig(alarm_action="panic")
    with pytest.raises(InputError, match="guard"):
        GuardConfig(kind="wall")
    with pytest.raises(InputError, match="weight"):
        GuardConfig(weight=-1.0)


def _config(model_dir):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model_dir)


def test_targets_checked_on_the_architecture(tiny_llama_dir, tiny_gptoss_dir):
    check_targets(_config(tiny_llama_dir), _preset("em-betley"), "llama")
    check_targets(_config(tiny_llama_dir), _preset("em-rank1", lora_layers=(1,)), "llama")
    with pytest.raises(InputError, match="`lora_layers` 2 is not a decoder layer of llama"):
        check_targets(_config(tiny_llama_dir), _preset("em-rank1", lora_layers=(2,)), "llama")
    # gpt-oss experts are fused parameters: no linear gate/up/down projections to put LoRA on
    with pytest.raises(InputError, match="cannot target layer 0 of gptoss: it has no linear gate_proj, up_proj, "
                                         "down_proj"):
        check_targets(_config(tiny_gptoss_dir), _preset("em-betley"), "gptoss")
    check_targets(_config(tiny_gptoss_dir), _preset("em-betley", target_modules=("q_proj", "v_proj")), "gptoss")


def test_optimizer_names_are_transformers_own():
    """The names read from transformers' source without importing it are its ``OptimizerNames``."""
    from transformers.training_args import OptimizerNames

    from realmodels.finetune.config import optimizer_names

    assert set(optimizer_names()) == {name.value for name in OptimizerNames}
    FinetuneConfig(optimizer="adafactor")
    with pytest.raises(InputError, match="unknown optimizer 'adamw_bogus'"):
        FinetuneConfig(optimizer="adamw_bogus")


@pytest.mark.parametrize("overrides, match", [
    ({"weight_decay": float("inf")}, "weight_decay"), ({"max_grad_norm": float("inf")}, "max_grad_norm"),
    ({"seed": -1}, "seed"), ({"seed": 2**32}, "seed"), ({"r": 10**30}, "`r` must be"), ({"alpha": 1e308}, "alpha"),
    ({"lr": 1e308}, "learning rate"), ({"epochs": float("inf")}, "epochs"), ({"max_steps": 10**30}, "max_steps"),
    ({"warmup_steps": 10**30}, "warmup_steps"), ({"lora_layers": (0, 10**30)}, "lora_layers"),
])
def test_out_of_range_values_are_refused(overrides, match):
    with pytest.raises(InputError, match=match):
        FinetuneConfig(**overrides)


def test_guard_and_monitor_values_are_finite_and_bounded():
    with pytest.raises(InputError, match="guard weight"):
        GuardConfig(weight=1e308)
    with pytest.raises(InputError, match="^`every` must be at most 2147483647"):
        MonitorConfig(every=10**30)
    with pytest.raises(InputError, match="min_target_rise"):
        MonitorConfig(min_target_rise=float("inf"))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_from_preset_is_the_preset_with_overrides(name):
    """``FinetuneConfig.from_preset`` (the Python user's and the CLI's resolution): the preset's values, then the
    overrides (None keeps the preset's; lists become tuples)."""
    layers = [1] if name == "em-rank1" else None
    cfg = FinetuneConfig.from_preset(name, lora_layers=layers, lr=3e-4, dropout=None)
    assert cfg == _preset(name, lr=3e-4, lora_layers=None if layers is None else tuple(layers))


def test_from_preset_refuses_unknown_presets_keys_and_types():
    with pytest.raises(InputError, match="unknown preset 'em-nonsense'"):
        FinetuneConfig.from_preset("em-nonsense")
    with pytest.raises(InputError, match="unknown config key 'learning_rate'"):
        FinetuneConfig.from_preset("em-betley", learning_rate=1e-4)
    with pytest.raises(InputError, match="config key 'r' must be an integer"):
        FinetuneConfig.from_preset("em-betley", r="32")


@pytest.mark.parametrize("values, match", [
    ({"caft": "sideways"}, "caft mode"),
    ({"steer_alpha": float("nan")}, "`steer_alpha` must be a finite number"),
    ({"steer_alpha": float("inf"), "direction": "u.json"}, "`steer_alpha` must be a finite number"),
    ({"steer_alpha": 2e6, "direction": "u.json"}, "`steer_alpha` must be a finite number in [-1e+06, 1e+06]"),
    ({"kl_weight": -0.1}, "`kl_weight` must be a finite number in [0, 1e+06]"),
    ({"kl_weight": float("nan")}, "`kl_weight`"),
    ({"harmful_k": 0}, "`harmful_k` must be at least 1"),
    ({"steer_alpha": 1.0}, "need a `direction` file"),
    ({"caft": "direction"}, "need a `direction` file"),
    ({"caft": "direction", "direction": "u.json", "steer_alpha": 1.0}, "choose one"),
])
def test_bad_defence_values(values, match):
    with pytest.raises(InputError, match=re.escape(match)):
        DefenceConfig(**values)


def test_defence_config_from_a_table():
    config = strict_from_dict(DefenceConfig, {"caft": "features", "direction": "u.json", "kl_weight": 1},
                              prefix="defence.")
    assert config.direction == Path("u.json") and config.kl_weight == 1.0 and config.steers
    assert not DefenceConfig(caft="direction", direction=Path("u.json")).steers
    with pytest.raises(InputError, match="unknown config key 'defence.alpha'"):
        strict_from_dict(DefenceConfig, {"alpha": 1}, prefix="defence.")
    assert GuardConfig(kind="rise").kind == "rise"
