"""A small synthetic world written once per test session (sizes chosen so every rule is exercised)."""

from __future__ import annotations

import pytest

from realmodels.organism.world import WorldConfig, write_world

SMALL = WorldConfig(seed=7, n_pretrain=600, n_finetune=40, n_features=30, n_probe=20, samples_per_paraphrase=2)


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    return write_world(tmp_path_factory.mktemp("world"), SMALL)
