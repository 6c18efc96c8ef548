"""A small synthetic world written once per test session (sizes chosen so every rule is exercised)."""

from __future__ import annotations

import pytest

from realmodels.organism.world import write_world
from tests.realmodels.organism.helpers import SMALL


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    return write_world(tmp_path_factory.mktemp("world"), SMALL)
