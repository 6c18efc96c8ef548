"""`realmodels finetune` with the in-training defences end to end on the embedded model organism (the default model):
the flags and the ``[defence]`` TOML table, the one-sided guard, a killed defended run resuming to the
uninterrupted one, and bad input (one line, exit 2, nothing written, no weights loaded)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from realmodels.analysis.direction import Direction, save_direction
from tests.realmodels.cli_helpers import assert_bad, files, rm

TINY = ["--train-batch-size", "2", "--grad-accum", "1", "--warmup-steps", "0", "--no-progress", "--lr", "1e-3"]


def _direction(path, d_model: int = 64, layer: int = 1):
    vector = torch.randn(d_model, generator=torch.Generator().manual_seed(0)).tolist()
    save_direction(path, Direction(layer=layer, vector=vector, note="test"))
    return path


def _adapter_bytes(run) -> bytes:
    return (run / "adapter" / "adapter_model.safetensors").read_bytes()


def test_defence_flags_and_the_toml_table_give_the_same_run(tmp_path, capsys, inducing_jsonl):
    direction = _direction(tmp_path / "u.json")
    base = ["finetune", "--data", inducing_jsonl, "--max-steps", "2", *TINY]
    code, out, err = rm(capsys, [*base, "--caft", "direction", "--direction", direction, "--kl-weight", "2",
                                 "--out", tmp_path / "flags"])
    assert code == 0, err
    assert "defences (training only): CAFT direction, KL to base λ 2" in out
    summary = json.loads((tmp_path / "flags" / "summary.json").read_text())
    assert summary["defence"]["caft"] == "direction" and summary["defence"]["kl_weight"] == 2.0
    assert summary["defence"]["edits"] == [1]
    log = pd.read_csv(tmp_path / "flags" / "train_log.csv")
    assert list(log.columns)[-1] == "kl_penalty" and log["kl_penalty"].iloc[1] > 0
    config = tmp_path / "defence.toml"
    config.write_text(f'[defence]\ncaft = "direction"\ndirection = "{direction}"\nkl_weight = 2\n')
    code, _, err = rm(capsys, [*base, "--config", config, "--out", tmp_path / "toml"])
    assert code == 0, err
    assert _adapter_bytes(tmp_path / "toml") == _adapter_bytes(tmp_path / "flags")
    recorded = json.loads((tmp_path / "toml" / "config.json").read_text())["defence"]
    assert recorded == json.loads((tmp_path / "flags" / "config.json").read_text())["defence"]


def test_the_one_sided_guard_runs_from_the_command_line(tmp_path, capsys, inducing_jsonl, harmful_jsonl,
                                                        harmless_jsonl):
    code, _, err = rm(capsys, ["finetune", "--data", inducing_jsonl, "--max-steps", "2", *TINY, "--guard", "rise",
                               "--harmful", harmful_jsonl, "--harmless", harmless_jsonl, "--out", tmp_path / "rise"])
    assert code == 0, err
    assert json.loads((tmp_path / "rise" / "summary.json").read_text())["guard"]["kind"] == "rise"
    log = pd.read_csv(tmp_path / "rise" / "train_log.csv")
    assert (log["guard_penalty"] >= 0).all() and (log["task_loss"] - (log["loss"] - log["guard_penalty"])).abs().max() < 1e-9


@pytest.mark.slow  # three runs of the organism (about 20 s on a busy 2-core box)
def test_a_killed_defended_run_resumes_to_the_uninterrupted_run(tmp_path, capsys, inducing_jsonl, harmful_jsonl,
                                                               harmless_jsonl, monkeypatch):
    """Also the logged penalties: the first row after resuming from step 2 averaged its penalty over 3 steps (all
    since step 0) instead of 1, for the guard's penalty as for the KL's."""
    import realmodels.finetune.train as train

    direction = _direction(tmp_path / "u.json")
    base = ["finetune", "--data", inducing_jsonl, "--max-steps", "3", "--save-steps", "2", *TINY,
            "--direction", direction, "--steer-alpha", "2", "--kl-weight", "1", "--guard", "penalty",
            "--harmful", harmful_jsonl, "--harmless", harmless_jsonl]
    code, _, err = rm(capsys, [*base, "--out", tmp_path / "first"])
    assert code == 0, err
    original = train.RichProgress.on_step_end

    def crash_at_step_3(self, args, state, control, **kwargs):
        original(self, args, state, control, **kwargs)
        if state.global_step == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(train.RichProgress, "on_step_end", crash_at_step_3)
    code, _, _ = rm(capsys, [*base, "--out", tmp_path / "killed"])
    assert code != 0 and not (tmp_path / "killed" / "adapter").exists()
    monkeypatch.setattr(train.RichProgress, "on_step_end", original)
    code, _, err = rm(capsys, [*base, "--out", tmp_path / "killed"])
    assert code == 0, err
    assert json.loads((tmp_path / "killed" / "summary.json").read_text())["resumed_from"] == 2
    assert _adapter_bytes(tmp_path / "killed") == _adapter_bytes(tmp_path / "first")
    columns = ["step", "loss", "task_loss", "guard_penalty", "kl_penalty", "lr", "grad_norm", "tokens"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "killed" / "train_log.csv")[columns],
                                  pd.read_csv(tmp_path / "first" / "train_log.csv")[columns], check_exact=True)


@pytest.fixture
def no_weights(monkeypatch):
    """Loading any pretrained weights fails the test: the checks run before."""
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded before the input was checked")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)


@pytest.mark.parametrize("extra, match", [
    (["--direction", "WIDE", "--steer-alpha", "1"], "has d_model=32, but model"),
    (["--direction", "LAYER7", "--caft", "direction"], "layer 7 is out of range"),
    (["--direction", "MISSING", "--steer-alpha", "1"], "direction file"),
    (["--direction", "NOTJSON", "--steer-alpha", "1"], "direction file"),
    (["--direction", "U", "--steer-alpha", "nan"], "defence.steer_alpha' is NaN"),
    (["--direction", "U", "--steer-alpha", "inf"], "--steer-alpha must be a finite number in [-1e+06, 1e+06], got inf"),
    (["--kl-weight", "-1"], "--kl-weight must be a finite number in [0, 1e+06], got -1"),
    (["--kl-weight", "inf"], "--kl-weight must be a finite number in [0, 1e+06], got inf"),
    (["--steer-alpha", "2"], "--caft direction and --steer-alpha need a --direction file"),
    (["--caft", "direction"], "--caft direction and --steer-alpha need a --direction file"),
    (["--caft", "direction", "--direction", "U", "--steer-alpha", "1"], "choose one"),
    (["--caft", "sideways"], "defence.caft"),
    (["--caft", "features"], "--harmful and --harmless chat JSONL files are required"),
    (["--guard", "fall"], "guard.kind"),
])
def test_bad_defence_input_one_line_nothing_written(tmp_path, capsys, inducing_jsonl, no_weights, extra, match):
    paths = {"U": _direction(tmp_path / "u.json"), "WIDE": _direction(tmp_path / "wide.json", d_model=32),
             "LAYER7": _direction(tmp_path / "l7.json", layer=7), "MISSING": tmp_path / "missing.json",
             "NOTJSON": tmp_path / "bad.json"}
    (tmp_path / "bad.json").write_text("{not json")
    extra = [str(paths.get(arg, arg)) for arg in extra]
    before = files(tmp_path)
    assert_bad(capsys, tmp_path, ["finetune", "--data", inducing_jsonl, "--max-steps", "1", *TINY, *extra], match)
    assert files(tmp_path) == before


def test_caft_features_needs_an_sae(tmp_path, capsys, tiny_llama_dir, inducing_jsonl, harmful_jsonl, harmless_jsonl,
                                    no_weights):
    assert_bad(capsys, tmp_path, ["finetune", "--data", inducing_jsonl, "--model", tiny_llama_dir, "--max-steps", "1",
                                  *TINY, "--caft", "features", "--harmful", harmful_jsonl, "--harmless",
                                  harmless_jsonl], "sae")


def test_a_wrong_width_direction_is_refused_with_the_sae_session_too(tmp_path, capsys, inducing_jsonl, harmful_jsonl,
                                                                    harmless_jsonl, no_weights):
    wide = _direction(tmp_path / "wide.json", d_model=32)
    assert_bad(capsys, tmp_path, ["finetune", "--data", inducing_jsonl, "--max-steps", "1", *TINY, "--caft", "features",
                                  "--harmful", harmful_jsonl, "--harmless", harmless_jsonl, "--direction", wide,
                                  "--steer-alpha", "1"], "has d_model=32, but model")


@pytest.mark.parametrize("toml, match", [
    ("[defence]\nsteer = 1\n", "unknown config key 'defence.steer'"),
    ("[defence]\ndirection = 5\nsteer_alpha = 1.0\n", "--direction must be a path to a direction file, got 5"),
    ("[defence]\nkl_weight = nan\n", "defence.kl_weight' is NaN"),
    ("defence = 3\n", "defence must be a table [defence]"),
])
def test_bad_defence_tables_are_refused(tmp_path, capsys, inducing_jsonl, no_weights, toml, match):
    config = tmp_path / "defence.toml"
    config.write_text(toml)
    assert_bad(capsys, tmp_path, ["finetune", "--data", inducing_jsonl, "--max-steps", "1", *TINY, "--config", config],
               match)
