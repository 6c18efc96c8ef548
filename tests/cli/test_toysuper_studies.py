"""End-to-end tests of the study commands (inducing, mitigate, density, geometry, figures) on tiny configs,
the shipped default TOMLs, and bad input (one line on stderr, exit 2, no run directory)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cli.toysuper_app import main
from cli.configfile import resolve_config
from cli.toysuper_studies import CONFIG_CLASSES
from tests.helpers import assert_one_line_error, run_cli
from toysuper.runners import FIGURES

CONFIGS = Path(__file__).resolve().parents[2] / "toysuper" / "configs"

WORLD = """
[model]
n_features = 7
n_hidden = 2
n_instances = 2
feature_probability = 0.1

[train]
steps = 150
batch_size = 64

[harmful]
features = [0, 1]

[task]
n_samples = 40
n_heldout = 8
n_probe = 256
context_size = 2

[finetune]
lr = 0.05
steps = 5
"""
TINY = {
    "inducing": WORLD + "\n[analysis]\nn_bootstrap = 50\nn_permutations = 50\nn_null_draws = 50\n",
    "mitigate": WORLD + "\n[analysis]\nn_bootstrap = 50\n\n[mitigation]\nfraction = 0.25\n",
    "density": "n_hidden = 2\nratios = [2]\nprobabilities = [0.1, 0.05]\nn_instances = 2\nmax_tasks = 2\n"
               "workers = 1\nn_bootstrap = 20\n[train]\nsteps = 100\nbatch_size = 64\n[harmful]\nfeatures = [0]\n"
               "[task]\nn_samples = 16\nn_heldout = 4\nn_probe = 64\ncontext_size = 1\n",
    "simulate": "[model]\nn_features = 6\nn_hidden = 2\nn_instances = 2\n[train]\nsteps = 100\nbatch_size = 64\n"
                "[finetune]\nsteps = 3\nn_samples = 32\nn_probe = 64\n",
    "geometry": "[model]\nn_features = 4\n[train]\nsteps = 150\nbatch_size = 64\n[task]\nn_samples = 16\nn_heldout = 4\n"
                "n_probe = 64\n",
}


@pytest.fixture
def tiny(tmp_path) -> Path:
    directory = tmp_path / "configs"
    directory.mkdir()
    for name, text in TINY.items():
        (directory / f"{name}.toml").write_text(text)
    return directory


@pytest.mark.parametrize("study", sorted(CONFIG_CLASSES))
def test_shipped_tomls_are_the_defaults(study):
    cls = CONFIG_CLASSES[study]
    assert resolve_config(cls, CONFIGS / f"{study}.toml", {}) == cls()


def test_inducing_end_to_end_and_resume(tiny, tmp_path, capsys):
    out = tmp_path / "inducing"
    code, stdout, err = run_cli(main, ["inducing", "--config", tiny / "inducing.toml", "--out", out], capsys)
    assert code == 0, err
    for name in ("config.json", "summary.json", "tasks.csv", "trained_model.pt", "proximity_vs_misalignment.png",
                 "proximity_vs_misalignment.svg", "inducing_vs_non_inducing.png", "inducing_vs_non_inducing.svg"):
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "tasks.csv")
    assert len(table) == 2 * 5 and set(table["target"]) == {2, 3, 4, 5, 6}  # instances x benign targets
    assert {"proximity", "harmful_rise", "em_rate", "predicted_rise", "task_gain", "inducing"} <= set(table.columns)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_tasks"] == 5 and summary["n_inducing"] + summary["n_non_inducing"] == 10
    assert "proximity to the harmful set" in stdout
    code, stdout, _ = run_cli(main, ["inducing", "--config", tiny / "inducing.toml", "--out", out], capsys)
    assert code == 0 and "already finished" in stdout


def test_mitigate_end_to_end(tiny, tmp_path, capsys):
    out = tmp_path / "mitigate"
    code, stdout, err = run_cli(main, ["mitigate", "--config", tiny / "mitigate.toml", "--out", out,
                                       "--methods", "geometry,random,judge,regularise"], capsys)
    assert code == 0, err
    table = pd.read_csv(out / "mitigations.csv")
    assert set(table["method"]) == {"none", "geometry", "random", "judge", "regularise"}
    removed = table.groupby("method")["n_removed"].first()
    assert removed["geometry"] == removed["random"] == removed["judge"] == 10  # round(0.25 * 40): same budget
    assert removed["none"] == removed["regularise"] == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["methods"]["regularise"]["rise_reduction_percent"]["estimate"] == pytest.approx(100, abs=1e-3)
    assert (out / "mitigations.png").stat().st_size < 200_000
    assert "paper" in stdout


def test_figures_regenerates_every_figure(tiny, tmp_path, capsys):
    figures = tmp_path / "figures"
    code, stdout, err = run_cli(main, ["figures", "--out-dir", figures, "--runs", tmp_path / "runs",
                                       "--config-dir", tiny], capsys)
    assert code == 0, err
    for name in FIGURES:
        png, svg = figures / f"{name}.png", figures / f"{name}.svg"
        assert png.is_file() and svg.is_file(), name
        assert png.stat().st_size < 200_000
    assert (tmp_path / "runs" / "density" / "cells").is_dir()
    assert "total" in stdout


def _assert_rejected(args, out: Path, capsys):
    code, _, err = run_cli(main, [*args, "--out", out], capsys)
    assert_one_line_error(code, err)
    assert not out.exists(), "a rejected run must not leave a run directory"


@pytest.mark.parametrize("args, message", [
    (["inducing", "--harmful", ""], "empty"),
    (["inducing", "--harmful", "0,99"], "out of range"),
    (["inducing", "--harmful", "a,b"], "comma-separated"),
    (["mitigate", "--fraction", "1.0"], "[0, 1)"),
    (["mitigate", "--fraction", "-0.2"], "[0, 1)"),
    (["mitigate", "--methods", "geometry,oracle"], "unknown mitigation"),
    (["geometry", "--target", "0"], "benign"),
])
def test_bad_flags(args, message, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(main, [*args, "--out", out], capsys)
    assert_one_line_error(code, err)
    assert message in err and not out.exists()


@pytest.mark.parametrize("study, text", [
    ("inducing", "[harmful]\nfeatures = []\n"),
    ("inducing", "[model]\nn_features = 20\nbogus = 1\n"),
    ("mitigate", "[mitigation]\nfraction = 1.5\n"),
    ("density", "ratios = [1, 2]\nunknown_key = 3\n"),
    ("density", "[harmful]\nfeatures = [6]\n"),  # n = 1 * 5 at the smallest ratio
    ("geometry", "[model]\nn_hidden = 3\n"),
    ("inducing", "[finetune]\nn_samples = 3\n"),  # simulate's task-set key: the studies' tasks are in [task]
    ("mitigate", "[finetune]\nlr = 0\n"),
])
def test_bad_config_files(study, text, tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    _assert_rejected([study, "--config", config], tmp_path / "run", capsys)


def test_figures_rejects_a_bad_config_before_any_work(tiny, tmp_path, capsys):
    (tiny / "mitigate.toml").write_text("[mitigation]\nfraction = 2\n")
    code, _, err = run_cli(main, ["figures", "--out-dir", tmp_path / "fig", "--runs", tmp_path / "runs",
                                  "--config-dir", tiny], capsys)
    assert_one_line_error(code, err)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "fig").exists()
