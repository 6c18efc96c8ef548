"""`realmodels finetune` end to end on the tiny models (offline, CPU): every preset, the peft output, same seed
-> same adapter, kill + resume -> the uninterrupted run's adapter and log, the monitor and its alarm, the guard,
and bad input (one line, exit 2, nothing written)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import assert_one_line_error
from tests.realmodels.cli_helpers import assert_bad, rm

TINY = ["--train-batch-size", "2", "--grad-accum", "1", "--warmup-steps", "0", "--no-progress"]


def _adapter(out):
    return load_file(out / "adapter" / "adapter_model.safetensors")


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def llama(tiny_llama_dir):
    return ["--model", tiny_llama_dir]


def test_em_betley_outputs_load_with_peft_and_resume_finished(tmp_path, capsys, llama, inducing_jsonl,
                                                              tiny_llama_dir):
    out = tmp_path / "betley"
    args = ["finetune", "--data", inducing_jsonl, *llama, "--max-steps", "4", "--save-steps", "2", "--lr", "1e-3",
            *TINY, "--out", out]
    code, stdout, err = rm(capsys, args)
    assert code == 0, err
    for name in ("config.json", "summary.json", "train_log.csv", "loss.png", "loss.svg",
                 "adapter/adapter_config.json", "adapter/adapter_model.safetensors",
                 "checkpoints/checkpoint-2/adapter_model.safetensors", "checkpoints/checkpoint-4/trainer_state.json"):
        assert (out / name).is_file(), name
    log = pd.read_csv(out / "train_log.csv")
    assert list(log["step"]) == [1, 2, 3, 4]
    assert {"loss", "lr", "tokens_per_s"} <= set(log.columns) and (log["tokens_per_s"] > 0).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["recipe"]["preset"] == "em-betley" and summary["recipe"]["r"] == 32
    assert "fine-tuning" in stdout

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), out / "adapter")
    config = model.peft_config["default"]
    assert config.r == 32 and config.lora_alpha == 64 and config.use_rslora
    assert set(config.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert any(float(p.abs().max()) > 0 for n, p in model.named_parameters() if "lora_B" in n), "the adapter trained"

    code, stdout, _ = rm(capsys, args)
    assert code == 0 and "already finished" in stdout


def test_em_rank1_targets_one_down_proj(tmp_path, capsys, llama, inducing_jsonl):
    out = tmp_path / "rank1"
    code, _, err = rm(capsys, ["finetune", "--preset", "em-rank1", "--lora-layer", "1", "--data", inducing_jsonl,
                               *llama, "--max-steps", "2", *TINY, "--out", out])
    assert code == 0, err
    weights = _adapter(out)
    assert sorted(k.split(".mlp.")[0].rsplit(".", 1)[-1] for k in weights) == ["1", "1"]
    assert all("down_proj" in k for k in weights)
    shapes = sorted(tuple(v.shape) for v in weights.values())
    assert shapes == [(1, 128), (64, 1)]  # A (r, d_ff), B (d_model, r)


def test_full_finetuning_saves_a_loadable_model(tmp_path, capsys, llama, inducing_jsonl):
    out = tmp_path / "full"
    code, _, err = rm(capsys, ["finetune", "--preset", "full", "--data", inducing_jsonl, *llama, "--max-steps", "2",
                               *TINY, "--out", out])
    assert code == 0, err
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(out / "model")
    assert AutoTokenizer.from_pretrained(out / "model").chat_template
    assert not (out / "adapter").exists()


def test_same_seed_same_adapter_and_killed_run_resumes_to_it(tmp_path, capsys, llama, inducing_jsonl, monkeypatch):
    base = ["finetune", "--data", inducing_jsonl, *llama, "--max-steps", "6", "--save-steps", "2", "--lr", "1e-3",
            "--r", "4", *TINY]
    first, second, killed = tmp_path / "a", tmp_path / "b", tmp_path / "killed"
    for out in (first, second):
        code, _, err = rm(capsys, [*base, "--out", out])
        assert code == 0, err
    assert _same(_adapter(first), _adapter(second)), "same seed, same adapter on CPU"

    from realmodels.finetune import train

    original = train.RichProgress.on_step_end

    def crash_at_step_3(self, args, state, control, **kwargs):
        original(self, args, state, control, **kwargs)
        if state.global_step == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(train.RichProgress, "on_step_end", crash_at_step_3)
    code, _, _ = rm(capsys, [*base, "--out", killed])
    assert code != 0 and not (killed / "adapter").exists() and (killed / "checkpoints" / "checkpoint-2").is_dir()
    monkeypatch.setattr(train.RichProgress, "on_step_end", original)
    code, _, err = rm(capsys, [*base, "--out", killed])
    assert code == 0, err
    assert json.loads((killed / "summary.json").read_text())["resumed_from"] == 2
    assert _same(_adapter(killed), _adapter(first)), "the resumed run ends with the uninterrupted run's adapter"
    columns = ["step", "loss", "lr", "grad_norm", "tokens"]
    pd.testing.assert_frame_equal(pd.read_csv(killed / "train_log.csv")[columns],
                                  pd.read_csv(first / "train_log.csv")[columns])


def _watched(tmp_path, name, llama_sae, inducing, control, *extra):
    """A run whose 'harmful' features are, by construction, the training data's own features (harmful =
    the training data vs its control), so the training pushes them up."""
    return ["finetune", "--data", inducing, *llama_sae, "--max-steps", "8", "--save-steps", "4", "--lr", "1e-2",
            *TINY, "--monitor", "--monitor-every", "2", "--harmful", inducing, "--harmless", control, "--control",
            control, *extra, "--out", tmp_path / name]


@pytest.fixture
def llama_sae(tiny_llama_dir, tiny_sae_dir):
    return ["--model", tiny_llama_dir, "--sae", tiny_sae_dir(tiny_llama_dir, layer=1), "--layer", "1"]


def test_monitor_rows_alarm_and_guard(tmp_path, capsys, llama_sae, inducing_jsonl, control_jsonl):
    runs = {}
    for name, extra in (("plain", []), ("alarm", ["--alarm", "0.5"]), ("warn", ["--alarm", "0.5", "--alarm-warn-only"]),
                        ("penalty", ["--guard", "penalty"]), ("projection", ["--guard", "projection"])):
        code, stdout, err = rm(capsys, _watched(tmp_path, name, llama_sae, inducing_jsonl, control_jsonl, *extra))
        assert code == 0, err
        runs[name] = (pd.read_csv(tmp_path / name / "monitor.csv"),
                      json.loads((tmp_path / name / "summary.json").read_text()), stdout + err)
    plain, plain_summary, _ = runs["plain"]
    assert list(plain["step"]) == [0, 2, 4, 6, 8], "one row before training and one per monitored step"
    assert plain["harmful_rise"].iloc[-1] > 0, "the constructed harmful features rise"
    assert (tmp_path / "plain" / "monitor.png").is_file() and (tmp_path / "plain" / "monitor_features.csv").is_file()
    assert plain_summary["monitor"]["alarm_step"] is None and not plain_summary["stopped_early"]

    alarm, alarm_summary, alarm_out = runs["alarm"]
    assert alarm_summary["stopped_early"] and alarm_summary["monitor"]["alarm_step"] == 2
    assert list(alarm["step"]) == [0, 2] and "alarm at step 2" in alarm_out
    assert (tmp_path / "alarm" / "adapter" / "adapter_config.json").is_file()
    warn, warn_summary, warn_out = runs["warn"]
    assert not warn_summary["stopped_early"] and len(warn) == 5 and "alarm at step 2" in warn_out

    for kind in ("penalty", "projection"):
        guarded, summary, _ = runs[kind]
        assert summary["guard"]["kind"] == kind
        assert guarded["harmful_rise"].iloc[-1] < 0.5 * plain["harmful_rise"].iloc[-1], kind
    log = pd.read_csv(tmp_path / "penalty" / "train_log.csv")
    assert log["guard_penalty"].notna().all() and (log["guard_penalty"].iloc[1:] > 0).all(), "logged apart"  # step 1: B = 0
    assert (log["task_loss"] - (log["loss"] - log["guard_penalty"])).abs().max() < 1e-9
    assert pd.read_csv(tmp_path / "plain" / "train_log.csv")["guard_penalty"].isna().all()


def test_rank1_monitor_logs_the_adapter_direction(tmp_path, capsys, llama_sae, inducing_jsonl, control_jsonl):
    code, _, err = rm(capsys, _watched(tmp_path, "r1", llama_sae, inducing_jsonl, control_jsonl, "--preset", "em-rank1",
                                       "--lora-layer", "0"))
    assert code == 0, err
    rows = pd.read_csv(tmp_path / "r1" / "monitor.csv")
    assert rows["b_norm"].iloc[0] == 0 and (rows["b_norm"].iloc[1:] > 0).all()
    assert rows["b_cos_prev"].iloc[2:].between(-1.0001, 1.0001).all()


@pytest.mark.parametrize("extra, match", [
    (["--lr", "0"], "learning rate"),
    (["--lr", "-1e-5"], "learning rate"),
    (["--preset", "em-nonsense"], "choose em-betley, em-rank1, full"),
    (["--preset", "em-rank1"], "exactly one --lora-layer"),
    (["--preset", "em-rank1", "--lora-layer", "5"], "--lora-layer 5 is not a decoder layer"),
    (["--max-length", "3"], "no assistant tokens within the first 3 tokens"),
    (["--monitor"], "--harmful and --harmless"),
    (["--alarm", "1"], "need --monitor"),
    (["--guard", "wall"], "guard.kind"),
    (["--sae", "/nonexistent"], "used by --monitor, --guard or --caft features only"),
    # issue 19 item 7: values that used to pass validation and fail later with a traceback
    (["--weight-decay", "inf"], "weight_decay must be a finite number"),
    (["--weight-decay", "nan"], "finetune.weight_decay' is NaN"),
    (["--seed", "-1"], "--seed must be at least 0, got -1"),
    (["--seed", str(10**30)], "finetune.seed"),
    (["--seed", str(2**32)], "--seed must be at most 4294967295, got 4294967296"),
    (["--r", str(10**30)], "finetune.r"),
    (["--r", str(2**20)], "--r must be at most 65536, got 1048576"),
    (["--optimizer", "bogus"], "unknown optimizer 'bogus'"),
    (["--lr", "inf"], "learning rate"),
    (["--epochs", "1e308", "--max-steps", "-1"], "epochs must be a positive finite number at most 10000"),
    (["--lora-layer", str(10**30)], "lora_layers"),
    # issue 19 item 8: values silently accepted
    (["--max-length", "-3"], "--max-length must be at least 1, got -3"),
    (["--max-length", "0"], "--max-length must be at least 1, got 0"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--threads", str(10**30)], "--threads must be an integer >= 1"),
    (["--monitor", "--harmful", "x.jsonl", "--harmless", "y.jsonl", "--alarm", "1e308"],
     "--alarm must be a finite number in [-1e+06, 1e+06]"),
])
def test_bad_input_one_line_nothing_written(tmp_path, capsys, llama, inducing_jsonl, extra, match):
    assert_bad(capsys, tmp_path, ["finetune", "--data", inducing_jsonl, *llama, "--max-steps", "1", *TINY, *extra],
               match)


@pytest.mark.parametrize("toml, match", [
    ("[finetune]\nmax_grad_norm = inf\n", "max_grad_norm (0: no clipping) must be a finite number"),
    ("[finetune]\nmax_grad_norm = nan\n", "finetune.max_grad_norm' is NaN"),
    ("finetune = 5\n", "finetune must be a table [finetune], got 5"),
    ("monitor = [1]\n", "monitor must be a table [monitor]"),
    ("[finetune]\nseed = 9223372036854775807\n", "seed must be at most 4294967295, got 9223372036854775807"),
    ("[finetune]\noptimizer = \"sgdx\"\n", "unknown optimizer 'sgdx'"),
    ("[guard]\nweight = 1e308\n", "guard weight must be a finite number in [0, 1e+06]"),
])
def test_bad_config_file_one_line_nothing_written(tmp_path, capsys, llama, inducing_jsonl, toml, match):
    config = tmp_path / "recipe.toml"
    config.write_text(toml)
    assert_bad(capsys, tmp_path, ["finetune", "--data", inducing_jsonl, *llama, "--max-steps", "1", *TINY,
                                  "--config", config], match)


def test_a_huge_guard_weight_is_refused_before_training(tmp_path, capsys, llama_sae, inducing_jsonl, control_jsonl):
    """--guard-weight 1e308 used to train and then fail; it is refused with nothing written."""
    args = _watched(tmp_path, "never", llama_sae, inducing_jsonl, control_jsonl, "--guard", "penalty",
                    "--guard-weight", "1e308")
    out = args[args.index("--out") + 1]
    code, _, err = rm(capsys, args)
    assert_one_line_error(code, err)
    assert "guard weight must be a finite number in [0, 1e+06], got 1e+308" in err and not out.exists()


def test_gptoss_experts_cannot_take_the_betley_adapter(tmp_path, capsys, tiny_gptoss_dir, inducing_jsonl):
    assert_bad(capsys, tmp_path, ["finetune", "--data", inducing_jsonl, "--model", tiny_gptoss_dir, "--max-steps", "1",
                                  *TINY], "no linear gate_proj, up_proj, down_proj")


def test_resuming_with_another_config_is_refused(tmp_path, capsys, llama, inducing_jsonl):
    out = tmp_path / "run"
    args = ["finetune", "--data", inducing_jsonl, *llama, "--max-steps", "1", *TINY, "--out", out]
    code, _, err = rm(capsys, args)
    assert code == 0, err
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    code, _, err = rm(capsys, [*args, "--lr", "3e-4"])
    assert_one_line_error(code, err)
    assert "different config" in err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_a_run_that_failed_before_training_does_not_lock_its_out(tmp_path, capsys, llama, inducing_jsonl,
                                                                 monkeypatch):
    from realmodels.finetune import source
    from theory.errors import InputError

    out = tmp_path / "run"
    args = ["finetune", "--data", inducing_jsonl, *llama, "--max-steps", "1", *TINY, "--out", out]

    def broken(self):
        raise InputError("could not load the model (simulated)")

    monkeypatch.setattr(source.TrainingModel, "model", property(broken))
    code, _, err = rm(capsys, args)
    assert_one_line_error(code, err)
    assert (out / "config.json").is_file() and not (out / "summary.json").exists()
    monkeypatch.undo()
    code, stdout, err = rm(capsys, [*args, "--lr", "3e-4"])  # another config in the same --out
    assert code == 0, err
    assert "produced no result" in stdout and json.loads((out / "config.json").read_text())["finetune"]["lr"] == 3e-4


def test_a_monitored_run_shorter_than_a_monitor_interval_writes_its_summary(tmp_path, capsys, llama_sae,
                                                                             inducing_jsonl, control_jsonl):
    """Only the step-0 row: the ratio of rises is undefined (NaN), recorded as null; summary.json used to fail to
    be written after training (found by tests/realmodels/test_numeric_options.py with --alarm 0)."""
    code, _, err = rm(capsys, _watched(tmp_path, "short", llama_sae, inducing_jsonl, control_jsonl, "--max-steps", "1",
                                       "--monitor-every", "10", "--alarm", "0"))
    assert code == 0, err
    monitor = json.loads((tmp_path / "short" / "summary.json").read_text())["monitor"]
    assert monitor["rows"] == 1 and monitor["ratio"] is None
