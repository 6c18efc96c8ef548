"""A small organism world (``realmodels organism world``'s datasets, small sizes) and one feature-cards run on the
embedded organism over it, shared by the module's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from realmodels.organism.world import write_world
from tests.realmodels.organism.helpers import SMALL


@pytest.fixture(scope="session")
def organism_world(tmp_path_factory) -> dict[str, Path]:
    return write_world(tmp_path_factory.mktemp("world"), SMALL)


@pytest.fixture(scope="session")
def organism_cards(tmp_path_factory, organism_world) -> Path:
    """The run directory of feature cards on the embedded organism: feature 3 given, the 5 harmful features,
    snippets from inducing_health and harmful."""
    from realmodels.analysis.configs import SelectionConfig
    from realmodels.experiments.features import run_feature_cards
    from realmodels.experiments.spec import RunOptions
    from realmodels.interpret.config import FeatureCardsConfig

    out = tmp_path_factory.mktemp("cards") / "run"
    run_feature_cards([organism_world["inducing_health"], organism_world["harmful"]], features=[3],
                      harmful=organism_world["harmful"], harmless=organism_world["harmless"],
                      selection=SelectionConfig(harmful_k=5), config=FeatureCardsConfig(examples=3, top_tokens=6),
                      options=RunOptions(out=out, progress=False), log=lambda message: None)
    return out
