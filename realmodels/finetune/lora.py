"""The trainable part of a fine-tuning run: peft LoRA adapters on the configured modules and layers (or every
weight for ``method = "full"``), checked against the model's architecture before any weights load.

The check builds the model from its config on the ``meta`` device (no memory, no weights) and requires every
target module name to exist as an ``nn.Linear`` in every targeted decoder layer — so an MoE model whose experts
are fused parameters (gpt-oss) is told which projections it lacks instead of silently getting fewer adapters.
A LoRA update of a module is ΔW = s · B A, s = α/r (α/√r with rsLoRA); B starts at 0, so the model starts
as the base model."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from realmodels.finetune.config import FinetuneConfig
from realmodels.loading.placement import decoder_layers
from theory.errors import ParamError

if TYPE_CHECKING:
    from transformers import PretrainedConfig


def _meta_model(config: PretrainedConfig) -> nn.Module:
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def check_targets(config: PretrainedConfig, cfg: FinetuneConfig, model_name: str) -> None:
    """InputError (one line) unless every ``cfg.lora_layers`` index is a decoder layer of the model and every
    ``cfg.target_modules`` name is a linear module in each targeted layer. Loads no weights."""
    if cfg.method == "full":
        return
    layers = decoder_layers(_meta_model(config))
    targeted = range(len(layers)) if cfg.lora_layers is None else cfg.lora_layers
    bad = [layer for layer in targeted if not 0 <= layer < len(layers)]
    if bad:
        raise ParamError(f"`lora_layers` {bad[0]} is not a decoder layer of {model_name} (layers 0..{len(layers) - 1})")
    for layer in targeted:
        linear = {name.rpartition(".")[2] for name, module in layers[layer].named_modules()
                  if isinstance(module, nn.Linear)}
        missing = [name for name in cfg.target_modules if name not in linear]
        if missing:
            raise ParamError(f"the {cfg.preset} adapter cannot target layer {layer} of {model_name}: it has no linear "
                             f"{', '.join(missing)} (its linear modules: {', '.join(sorted(linear)) or 'none'}); "
                             "choose `target_modules` among them")


def lora_config(cfg: FinetuneConfig):
    """The peft ``LoraConfig`` of a recipe."""
    from peft import LoraConfig

    return LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, use_rslora=cfg.rslora, lora_dropout=cfg.dropout,
                      target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM",
                      layers_to_transform=None if cfg.lora_layers is None else list(cfg.lora_layers))


def make_trainable(model: nn.Module, cfg: FinetuneConfig) -> nn.Module:
    """The model to train: ``get_peft_model`` with the recipe's adapters, initialised from ``cfg.seed`` (peft
    draws A at random, B = 0), or the model itself with every weight trainable for full fine-tuning."""
    if cfg.method == "full":
        model.requires_grad_(True)
        return model
    import warnings

    from peft import get_peft_model

    torch.manual_seed(cfg.seed)
    with warnings.catch_warnings():  # peft calls a transformers property deprecated in v5
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, lora_config(cfg))


def rank1_direction(model: nn.Module) -> Tensor | None:
    """The B vector (d_out,) of a model with exactly one rank-1 LoRA adapter (float32 copy), else None: the
    direction the adapter writes into the residual stream (Turner et al.'s phase transition is a turn of it)."""
    vectors = [module.lora_B["default"].weight.detach().float().reshape(-1).clone()
               for module in model.modules()
               if hasattr(module, "lora_B") and "default" in getattr(module, "lora_B", {})]
    if len(vectors) != 1:
        return None
    shape = next(module.lora_B["default"].weight.shape for module in model.modules()
                 if hasattr(module, "lora_B") and "default" in getattr(module, "lora_B", {}))
    return vectors[0] if shape[1] == 1 else None
