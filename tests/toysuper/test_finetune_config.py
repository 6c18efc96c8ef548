"""The one fine-tuning config (toysuper.config.FinetuneConfig) and the optimiser registries: names accepted by
the configs are exactly the registries' keys, bad values are one InputError naming the key, the studies'
view of the config."""

from __future__ import annotations

import typing

import pytest
import torch

from theory.configs import strict_from_dict
from theory.errors import InputError
from toysuper.config import FinetuneConfig, TrainConfig
from toysuper.finetune import OBJECTIVES, OPTIMIZERS
from toysuper.train import TRAIN_OPTIMIZERS


def _choices(cls, name: str) -> set[str]:
    return set(typing.get_args(typing.get_type_hints(cls)[name]))


def test_config_choices_are_the_registries():
    assert _choices(FinetuneConfig, "optimizer") == set(OPTIMIZERS)
    assert _choices(FinetuneConfig, "objective") == set(OBJECTIVES)
    assert _choices(TrainConfig, "optimizer") == set(TRAIN_OPTIMIZERS)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_registry_builds_the_torch_optimiser(name):
    W = torch.zeros(2, 3, requires_grad=True)
    opt = OPTIMIZERS[name].make([W], lr=0.25)
    assert isinstance(opt, torch.optim.Optimizer) and opt.param_groups[0]["lr"] == 0.25


@pytest.mark.parametrize("data, needle", [
    ({"lr": 0.0}, "finetune.lr must be a finite number > 0"),
    ({"lr": float("inf")}, "finetune.lr must be a finite number > 0"),
    ({"steps": -1}, "finetune.steps must be >= 0"),
    ({"strength": float("inf")}, "finetune.strength must be a finite number"),
    ({"target": -1}, "target must be >= 0"),
    ({"n_probe": 0}, "n_samples and n_probe must be >= 1"),
    ({"background_probability": 1.5}, "background_probability must be in [0, 1]"),
    ({"optimizer": "rmsprop"}, "must be one of ['sgd', 'adam']"),
])
def test_bad_values_are_one_input_error(data, needle):
    with pytest.raises(InputError) as err:
        strict_from_dict(FinetuneConfig, data, prefix="finetune.")
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_for_target_and_the_optimisation_fields():
    config = FinetuneConfig(lr=0.01, steps=3)
    aimed = config.for_target(4)
    assert aimed.target == 4 and aimed.lr == 0.01 and aimed.steps == 3
    assert list(config.optimisation()) == ["objective", "optimizer", "lr", "steps", "strength"]
    assert config.optimisation()["lr"] == 0.01
