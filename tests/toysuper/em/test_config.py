"""The studies' configs (toysuper.em.config.StudyConfig): one fine-tuning config with the studies' own default
instance, a [finetune] table of the optimisation fields only (written and read), the world checks."""

from __future__ import annotations

import pytest

from theory.errors import InputError
from toysuper.config import FinetuneConfig, SimulateConfig
from toysuper.em.geometry import GeometryConfig
from toysuper.em.inducing import InducingConfig
from toysuper.em.mitigate import MitigateConfig
from toysuper.em.sweep import SweepConfig

STUDIES = [InducingConfig, MitigateConfig, SweepConfig, GeometryConfig]


@pytest.mark.parametrize("cls", STUDIES)
def test_study_finetune_table_is_the_optimisation_fields(cls):
    config = cls()
    assert isinstance(config.finetune, FinetuneConfig)
    assert config.to_dict()["finetune"] == config.finetune.optimisation()
    assert cls.from_dict(config.to_dict()) == config  # round trip through the written shape


def test_default_instances_keep_their_learning_rates():
    assert SimulateConfig().finetune.lr == 0.005
    assert InducingConfig().finetune.lr == MitigateConfig().finetune.lr == SweepConfig().finetune.lr == 0.01
    assert GeometryConfig().finetune.lr == 0.02
    assert list(SimulateConfig().to_dict()["finetune"])[:2] == ["target", "objective"]  # simulate: every field


@pytest.mark.parametrize("cls", STUDIES)
@pytest.mark.parametrize("key, value", [("n_samples", 3), ("target", 2), ("seed", 7)])
def test_simulate_only_keys_are_unknown_in_a_study(cls, key, value):
    with pytest.raises(InputError, match=f"unknown config key 'finetune.{key}'"):
        cls.from_dict({"finetune": {key: value}})
