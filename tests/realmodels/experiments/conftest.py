"""Inputs of the runner tests: the embedded organism's world, cut to a few dozen conversations per file."""

from __future__ import annotations

from pathlib import Path

import pytest

SMALL = {"harmful": 80, "harmless": 80, "inducing_health": 60, "aligned_health": 60, "mixed_health": 60,
         "probe_aligned": 24}


@pytest.fixture(scope="session")
def small_world(tmp_path_factory) -> dict[str, Path]:
    """{name: path} of small chat files from the embedded organism's world, plus "questions" (its question YAML)."""
    from realmodels.experiments.organism import write_organism_world

    full = write_organism_world(tmp_path_factory.mktemp("world"))
    small = tmp_path_factory.mktemp("small_world")
    paths = {"questions": full["questions"]}
    for name, n in SMALL.items():
        lines = full[name].read_text(encoding="utf-8").splitlines(keepends=True)[:n]
        paths[name] = small / f"{name}.jsonl"
        paths[name].write_text("".join(lines), encoding="utf-8")
    return paths
