"""End-to-end tests of `toysuper simulate` on tiny configs: outputs, determinism, resume, bad input."""

from __future__ import annotations

import json
import os
import stat

import pandas as pd
import pytest
import torch

from cli.toysuper_app import main
from tests.helpers import TINY_SIMULATE_ARGS, assert_one_line_error, run_cli, snapshot




def test_simulate_writes_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run_cli(main, ["simulate", *TINY_SIMULATE_ARGS, "--out", out], capsys)
    assert code == 0, err
    for name in ("config.json", "summary.json", "amplification.csv", "amplification.png", "amplification.svg",
                 "trained_model.pt"):
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "amplification.csv")
    assert {"instance", "feature", "similarity", "predicted", "measured"} <= set(table.columns)
    assert len(table) == 2 * 5  # instances x non-target features
    assert 0 not in set(table["feature"])  # the default target is excluded
    summary = json.loads((out / "summary.json").read_text())
    agree = summary["agreement_preactivation"]
    assert {"spearman", "max_relative_error", "slope", "r2"} <= set(agree)
    # SGD on a perfectly narrow task: the first-order theory must track the measurement closely
    assert agree["spearman"] > 0.95 and agree["max_relative_error"] < 0.2
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["n_features"] == 6 and config["finetune"]["optimizer"] == "sgd"
    assert "predicted vs measured" in stdout


def test_same_seed_identical_outputs_and_resume(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert run_cli(main, ["simulate", *TINY_SIMULATE_ARGS, "--seed", "3", "--out", out], capsys)[0] == 0
    snap_a, snap_b = snapshot(a), snapshot(b)
    for name in ("amplification.csv", "summary.json", "config.json", "amplification.png", "amplification.svg"):
        assert snap_a[name] == snap_b[name], name  # figures too: no SVG date, fixed element ids
    code, stdout, _ = run_cli(main, ["simulate", *TINY_SIMULATE_ARGS, "--seed", "3", "--out", a], capsys)
    assert code == 0 and "already finished" in stdout
    assert snapshot(a) == snap_a


def test_resume_reuses_trained_model(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(main, ["simulate", *TINY_SIMULATE_ARGS, "--out", out], capsys)[0] == 0
    reference = (out / "amplification.csv").read_bytes()
    for name in ("summary.json", "amplification.csv", "amplification.png", "amplification.svg"):
        (out / name).unlink()  # as if killed after training
    code, stdout, _ = run_cli(main, ["simulate", *TINY_SIMULATE_ARGS, "--out", out], capsys)
    assert code == 0 and "reusing the trained model" in stdout
    assert (out / "amplification.csv").read_bytes() == reference


def test_adam_and_output_objective_run(tmp_path, capsys):
    out = tmp_path / "adam"
    code, _, err = run_cli(main, ["simulate", *TINY_SIMULATE_ARGS, "--optimizer", "adam", "--objective", "output",
                                  "--ft-lr", "0.001", "--out", out], capsys)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["agreement_output"]["n"] == 10


def test_superposition_not_needed_warns(tmp_path, capsys):
    code, _, err = run_cli(main, ["simulate", "--features", "4", "--hidden", "4", "--instances", "1", "--steps", "20",
                                  "--batch-size", "32", "--out", tmp_path / "w"], capsys)
    assert code == 0
    assert "warning:" in err and "no superposition" in err


BAD_ARGS = [
    (["--hidden", "0"], "n_hidden"),
    (["--features", "-3"], "n_features"),
    (["--feature-probability", "1.5"], "feature_probability"),
    (["--feature-probability", "0"], "feature_probability"),
    (["--target", "6"], "out of range"),
    (["--steps", "-1"], "steps"),
    (["--ft-steps", "-2"], "steps"),
    (["--lr", "nan"], "lr"),
    (["--importance-decay", "inf"], "importance_decay"),
    (["--optimizer", "rmsprop"], "optimizer"),
    (["--steps", "abc"], "--steps"),
]


@pytest.mark.parametrize(("args", "needle"), BAD_ARGS)
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, args, needle):
    out = tmp_path / "run"
    code, _, err = run_cli(main, ["simulate", *TINY_SIMULATE_ARGS, *args, "--out", out], capsys)
    assert_one_line_error(code, err)
    assert needle in err
    assert not out.exists()


@pytest.mark.parametrize(("content", "needle"), [
    ("[model]\nn_features = 6\nbogus = 1\n", "unknown config key 'model.bogus'"),
    ("[modle]\nn_features = 6\n", "unknown config key 'modle'"),
    ("[model\n", "not valid TOML"),
    ("[model]\nn_hidden = 'two'\n", "must be an integer"),
    ("[finetune]\nlr = nan\n", "NaN"),
])
def test_bad_config_files(tmp_path, capsys, content, needle):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(content)
    out = tmp_path / "run"
    code, _, err = run_cli(main, ["simulate", "--config", cfg, "--out", out], capsys)
    assert_one_line_error(code, err)
    assert needle in err
    assert not out.exists()


def test_missing_and_unreadable_config(tmp_path, capsys):
    code, _, err = run_cli(main, ["simulate", "--config", tmp_path / "nope.toml", "--out", tmp_path / "r"], capsys)
    assert_one_line_error(code, err)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    code, _, err = run_cli(main, ["simulate", "--config", binary, "--out", tmp_path / "r"], capsys)
    assert_one_line_error(code, err)
    assert not (tmp_path / "r").exists()


def test_config_file_controls_run_and_conflicting_rerun_refused(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[model]\nn_features = 5\nn_hidden = 2\nn_instances = 1\n[train]\nsteps = 50\nbatch_size = 64\n"
                   "[finetune]\ntarget = 2\nsteps = 3\n")
    out = tmp_path / "run"
    assert run_cli(main, ["simulate", "--config", cfg, "--out", out], capsys)[0] == 0
    table = pd.read_csv(out / "amplification.csv")
    assert len(table) == 4 and 2 not in set(table["feature"])
    code, _, err = run_cli(main, ["simulate", "--config", cfg, "--seed", "9", "--out", out], capsys)
    assert_one_line_error(code, err)
    assert "different config" in err


def test_trained_model_file_is_loadable(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(main, ["simulate", *TINY_SIMULATE_ARGS, "--out", out], capsys)[0] == 0
    payload = torch.load(out / "trained_model.pt")  # the model's tensors and its loss record
    assert payload["model"]["W"].shape == (2, 6, 2)
    assert payload["loss_steps"][-1] == 200 and len(payload["loss_history"][-1]) == 2


def test_shipped_config_equals_defaults():
    from pathlib import Path

    from cli.configfile import read_toml
    from toysuper.config import SimulateConfig

    shipped = Path(__file__).parents[2] / "toysuper" / "configs" / "simulate.toml"
    assert SimulateConfig.from_dict(read_toml(shipped)) == SimulateConfig()


def test_help_shows_config_table_names(capsys, monkeypatch):
    """Rich markup would swallow "[model]" unless escaped; the help must name the TOML tables."""
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run_cli(main, ["simulate", "--help"], capsys)
    assert code == 0
    assert "[model], [train], [finetune]" in out


def test_run_files_get_the_umask_mode_not_mkstemps_0600(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(main, ["simulate", *TINY_SIMULATE_ARGS, "--out", out], capsys)
    assert code == 0, err
    umask = os.umask(0)
    os.umask(umask)
    for name in ("summary.json", "amplification.csv", "amplification.png"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o666 & ~umask, name
