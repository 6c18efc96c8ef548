"""`realmodels organism build` end to end: a tiny build from the command line, killed after a checkpoint and
resumed to the uninterrupted build's weights; bad input is one line with nothing written; and the built organism
runs with the other commands (`audit` on the world's own datasets)."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from tests.helpers import assert_one_line_error
from tests.realmodels.cli_helpers import assert_bad, rm

TINY = ["--steps", "4", "--batch-size", "8", "--save-steps", "2", "--layers", "2", "--d-model", "16", "--heads", "2",
        "--d-mlp", "32", "--layer", "1", "--n-pretrain", "64", "--d-sae", "32", "--sae-k", "4", "--sae-steps", "20",
        "--sae-conversations", "40", "--seed", "3", "--no-progress"]


def _weights(out):
    return load_file(out / "model" / "model.safetensors")


def test_build_kill_resume_and_use(tmp_path, capsys, monkeypatch):
    full, killed = tmp_path / "full", tmp_path / "killed"
    code, stdout, err = rm(capsys, ["organism", "build", *TINY, "--out", full])
    assert code == 0, err
    assert (full / "model" / "config.json").is_file() and (full / "sae" / "cfg.json").is_file()
    assert "--model" in stdout and "MB of model + SAE" in stdout
    assert "Training SAE" not in err + stdout  # --no-progress silences sae-lens's trainer bar too

    from realmodels.finetune import train

    original = train.RichProgress.on_step_end

    def crash_at_step_3(self, args, state, control, **kwargs):
        original(self, args, state, control, **kwargs)
        if state.global_step == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(train.RichProgress, "on_step_end", crash_at_step_3)
    code, _, _ = rm(capsys, ["organism", "build", *TINY, "--out", killed])
    assert code == 2 and not (killed / "model").exists()
    monkeypatch.setattr(train.RichProgress, "on_step_end", original)
    code, _, err = rm(capsys, ["organism", "build", *TINY, "--out", killed])
    assert code == 0, err
    a, b = _weights(full), _weights(killed)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a), "the resumed build equals the uninterrupted"

    code, _, err = rm(capsys, ["organism", "build", *[t if t != "3" else "4" for t in TINY], "--out", full])
    assert_one_line_error(code, err)
    assert "holds a different build" in err

    world = full / "world"
    audit = tmp_path / "audit"
    code, _, err = rm(capsys, ["audit", "--model", full / "model", "--sae", full / "sae", "--layer", "1",
                               "--data", world / "inducing_health.jsonl", "--control", world / "aligned_health.jsonl",
                               "--harmful", world / "harmful.jsonl", "--harmless", world / "harmless.jsonl",
                               "--k", "5", "--harmful-k", "5", "--n-null", "50", "--no-progress", "--out", audit])
    assert code == 0, err
    assert json.loads((audit / "summary.json").read_text())["n_harmful_features"] == 5


@pytest.mark.parametrize("extra, match", [
    (["--domain", "mars"], "unknown domain 'mars' (domains: health"),
    (["--layer", "5"], "layer 5 is not a layer of the model"),
    (["--steps", "0"], "steps must be an integer > 0"),
    (["--d-sae", "0"], "SAE d_sae must be an integer > 0"),
])
def test_build_bad_input(tmp_path, capsys, extra, match):
    out = tmp_path / "never"
    code, _, err = rm(capsys, ["organism", "build", *TINY, *extra, "--out", out])
    assert_one_line_error(code, err)
    assert match in err and not out.exists()


def test_assert_bad_is_usable_for_the_organism_command(tmp_path, capsys):
    assert_bad(capsys, tmp_path, ["organism", "build", *TINY, "--heads", "3"], "not a multiple of n_heads")


def test_build_survives_a_full_disk_and_skips_a_damaged_checkpoint(tmp_path, capsys, monkeypatch):
    """Issue 19: the disk fills while checkpoint-4 is written (one line; checkpoint-2 intact), and a build whose
    last checkpoint is damaged resumes from the one before with a warning; both end with the uninterrupted
    build's weights."""
    import shutil

    import torch

    full, filled, damaged = tmp_path / "full", tmp_path / "filled", tmp_path / "damaged"
    code, _, err = rm(capsys, ["organism", "build", *TINY, "--out", full])
    assert code == 0, err
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        if "checkpoint-4" in str(f) and str(f).endswith("scheduler.pt"):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    code, _, err = rm(capsys, ["organism", "build", *TINY, "--out", filled])
    assert_one_line_error(code, err)
    assert "checkpoint-4" in err and "disk is probably full" in err
    assert sorted(p.name for p in (filled / "checkpoints").iterdir()) == ["checkpoint-2"]
    assert not (filled / "model").exists()
    monkeypatch.setattr(torch, "save", real_save)
    code, _, err = rm(capsys, ["organism", "build", *TINY, "--out", filled])
    assert code == 0, err

    shutil.copytree(full, damaged)
    shutil.rmtree(damaged / "model")
    shutil.rmtree(damaged / "sae")
    optimizer = damaged / "checkpoints" / "checkpoint-4" / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:100])
    code, _, err = rm(capsys, ["organism", "build", *TINY, "--out", damaged])
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:") and "checkpoint-4" in line]
    assert len(warnings) == 1 and "resuming from checkpoint-2" in warnings[0], err
    a = _weights(full)
    for run in (filled, damaged):
        b = _weights(run)
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a), run


def test_a_diverging_build_stops_with_one_line_and_saves_no_model(tmp_path, capsys, monkeypatch):
    from tests.realmodels.finetune.test_checkpoints import nan_loss_from

    nan_loss_from(monkeypatch, 1)
    out = tmp_path / "diverged"
    code, _, err = rm(capsys, ["organism", "build", *TINY, "--out", out])
    assert_one_line_error(code, err)
    assert "training diverged" in err and "step " in err, err
    assert not (out / "model").exists() and not (out / "sae").exists()
