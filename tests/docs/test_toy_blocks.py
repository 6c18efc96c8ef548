"""The toy study's blocks (docs/toy/study.md) run as written in a scratch directory, each with a tiny config
appended (``--config`` for a study, ``--config-dir`` for ``figures``: the configs of
tests/cli/test_toysuper_studies.py), so they take seconds instead of the studies' minutes."""

from __future__ import annotations

import pytest

from cli.toysuper_app import main
from tests.cli.test_toysuper_studies import TINY
from tests.docs.blocks import PLAN, all_blocks
from tests.helpers import run_cli

BLOCKS = [name for name, kind in PLAN.items() if kind == "toy"]


@pytest.mark.parametrize("name", BLOCKS)
def test_the_toy_blocks_run(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    configs = tmp_path / "configs"
    configs.mkdir()
    for study, text in TINY.items():
        (configs / f"{study}.toml").write_text(text, encoding="utf-8")
    for command in all_blocks()[name].commands():
        assert command[0] == "toysuper", command
        study = command[1]
        tiny = ["--config-dir", configs] if study == "figures" else ["--config", configs / f"{study}.toml"]
        code, _, err = run_cli(main, [*command[1:], *tiny], capsys)
        assert code == 0, f"{name}: {' '.join(command)}: {err}"
        made = tmp_path / "figures" if study == "figures" else next((tmp_path / "runs").glob(f"{study}-*"))
        assert any(made.glob("*.png")), made
