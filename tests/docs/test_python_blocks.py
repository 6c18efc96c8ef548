"""The docs' Python blocks on the toolkit's own models run as written, exec'd in a scratch directory (the
checkpoint page's block runs in test_checkpoint_blocks.py)."""

from __future__ import annotations

import pytest

from tests.docs.blocks import PLAN, all_blocks

BLOCKS = [name for name, kind in PLAN.items() if kind == "python"]


@pytest.mark.parametrize("name", BLOCKS)
def test_the_python_blocks_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(all_blocks()[name].text, name, "exec"), namespace)
    run = namespace["run"]
    assert (tmp_path / run.path / "summary.json").is_file()
    assert "agreement_preactivation" in run.summary and len(run.table("amplification")) > 0
    if "sweep" in namespace:
        assert (tmp_path / namespace["sweep"].path / "density.csv").is_file()
