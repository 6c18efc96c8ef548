"""Diffing two full checkpoints on the embedded model organism, end to end through the CLI: ``realmodels
amplification --finetuned`` (measured change vs the JVP prediction along ΔW = θ_ft − θ_base) and ``realmodels
diff`` (SAE model diffing, with a full checkpoint or a LoRA adapter). A checkpoint diffed with itself is exactly
zero; a short full fine-tune (``realmodels finetune --preset full --max-steps 20``) is predicted to first order
(R² 0.999 measured when written); reruns change nothing; bad input is one line, exit 2, nothing written."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from realmodels.loading.embedded import EMBEDDED_DIR
from tests.realmodels.cli_helpers import assert_bad, files, rm

DIFF_COLUMNS = ["rank", "feature", "mean_base", "mean_finetuned", "diff", "se", "freq_base", "freq_finetuned",
                "freq_diff", "harmful"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small world of the shipped organism's build (its datasets regenerate)."""
    from realmodels.organism.world import WorldConfig, write_world

    build = json.loads((EMBEDDED_DIR / "build.json").read_text())
    config = WorldConfig.from_dict({**build["world"], "n_pretrain": 20, "n_finetune": 40, "n_features": 40,
                                    "n_probe": 12, "samples_per_paraphrase": 1})
    return write_world(tmp_path_factory.mktemp("world"), config)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, world):
    """A full fine-tune of the organism on inducing_health: what `realmodels finetune --preset full --max-steps 20`
    runs (20 steps, the preset's lr 1e-5)."""
    from realmodels.experiments import RunOptions, run_finetune
    from realmodels.finetune.config import FinetuneConfig

    out = tmp_path_factory.mktemp("full") / "run"
    run_finetune(world["inducing_health"], recipe=FinetuneConfig.from_preset("full", max_steps=20),
                 options=RunOptions(out=out, progress=False), log=lambda line: None)
    assert (out / "model" / "config.json").is_file()
    return out


def _pair(world) -> list:
    return ["--harmful", world["harmful"], "--harmless", world["harmless"], "--harmful-k", "20", "--no-progress"]


def _amplification(world, finetuned) -> list:
    return ["amplification", "--finetuned", finetuned, "--probe", world["probe_health"], "--data",
            world["inducing_health"], "--control", world["aligned_health"], "--k", "20", *_pair(world)]


def test_a_checkpoint_diffed_with_itself_is_exactly_zero(tmp_path, capsys, world):
    itself = EMBEDDED_DIR / "model"
    cache = ["--cache-dir", tmp_path / "cache"]  # the two runs share the base model's activations
    code, _, err = rm(capsys, [*_amplification(world, itself), *cache, "--out", tmp_path / "amp"])
    assert code == 0, err
    table = pd.read_csv(tmp_path / "amp" / "amplification.csv")
    for column in ("measured", "predicted", "measured_output", "predicted_output"):
        assert (table[column] == 0).all(), column
    summary = json.loads((tmp_path / "amp" / "summary.json").read_text())
    assert summary["checkpoint"] == {"n_changed": 0, "delta_norm": 0.0} and "adapter" not in summary
    code, _, err = rm(capsys, ["diff", "--finetuned", itself, "--probe", world["probe_health"], *_pair(world), *cache,
                               "--out", tmp_path / "diff"])
    assert code == 0, err
    table = pd.read_csv(tmp_path / "diff" / "diff.csv")
    assert (table["diff"] == 0).all() and (table["freq_diff"] == 0).all()
    assert (table["mean_base"] == table["mean_finetuned"]).all() and table["mean_base"].abs().max() > 0
    assert table["rank"].tolist() == list(range(1, 257)) and table["feature"].tolist() == list(range(256))


def test_full_finetune_amplification_is_predicted_to_first_order(tmp_path, capsys, world, full_run):
    out = tmp_path / "amp"
    recorded = [a for a in _amplification(world, full_run) if a not in ("--data", world["inducing_health"])]
    args = [*recorded, "--out", out]  # the training data: what the finetune run directory recorded
    code, stdout, err = rm(capsys, args)
    assert code == 0, err
    assert "first order (JVP)" in stdout
    summary = json.loads((out / "summary.json").read_text())
    n_params = 3 * 9 + 3  # 3 layers x (7 linear weights + 2 norms), embeddings, final norm, lm_head
    assert summary["checkpoint"]["n_changed"] == n_params and summary["checkpoint"]["delta_norm"] > 0
    first = summary["agreement"]["first_order"]
    assert first["r2"] > 0.95 and first["spearman"] > 0.9, first  # 0.999 / 0.999 when written
    assert pd.read_csv(out / "amplification.csv")["measured"].abs().max() > 0
    config = json.loads((out / "config.json").read_text())
    assert config["finetuned"] == str(full_run) and "adapter" not in config["model"]
    assert config["data"]["train"]["path"] == str(world["inducing_health"])
    snapshot = files(out)
    code, stdout, _ = rm(capsys, args)
    assert code == 0 and "already finished" in stdout and files(out) == snapshot


def test_diff_command_end_to_end(tmp_path, capsys, world, full_run):
    out = tmp_path / "diff"
    args = ["diff", "--finetuned", full_run / "model", "--probe", world["probe_health"], *_pair(world), "--out", out]
    code, stdout, err = rm(capsys, args)
    assert code == 0, err
    assert "largest changes" in stdout and "harmful features (20)" in stdout
    for name in ("diff.csv", "diff.png", "diff.svg", "summary.json", "config.json", "features/harmful.json"):
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "diff.csv")
    assert list(table.columns) == DIFF_COLUMNS and len(table) == 256 and sorted(table["feature"]) == list(range(256))
    assert table["diff"].is_monotonic_decreasing and table["diff"].abs().max() > 0
    assert (table["diff"] - (table["mean_finetuned"] - table["mean_base"])).abs().max() < 1e-12
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_probes"] == 12 and summary["n_features"] == 256
    assert [row["feature"] for row in summary["top_increased"]] == table["feature"].head(10).tolist()
    harmful = summary["harmful"]
    assert len(harmful["features"]) == 20 == table["harmful"].sum() and harmful["in_top"]["k"] == 20
    assert 0 <= harmful["in_top"]["p_value"] <= 1
    snapshot = files(out)
    code, stdout, _ = rm(capsys, args)
    assert code == 0 and "already finished" in stdout and files(out) == snapshot


def test_diff_of_a_lora_adapter(tmp_path, capsys, world):
    code, _, err = rm(capsys, ["finetune", "--data", world["inducing_health"], "--max-steps", "3", "--lr", "1e-2",
                               "--r", "4", "--train-batch-size", "8", "--grad-accum", "1", "--no-progress",
                               "--out", tmp_path / "ft"])
    assert code == 0, err
    code, _, err = rm(capsys, ["diff", "--adapter", tmp_path / "ft", "--probe", world["probe_health"],
                               "--no-progress", "--out", tmp_path / "diff"])
    assert code == 0, err
    table = pd.read_csv(tmp_path / "diff" / "diff.csv")
    assert table["diff"].abs().max() > 0 and not table["harmful"].any()
    summary = json.loads((tmp_path / "diff" / "summary.json").read_text())
    assert summary["harmful"] is None
    config = json.loads((tmp_path / "diff" / "config.json").read_text())
    assert config["model"]["adapter"] == str(tmp_path / "ft") and "finetuned" not in config


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, world, full_run, tiny_llama_dir, tiny_lora_dir):
    deeper = tmp_path / "deeper"
    shutil.copytree(EMBEDDED_DIR / "model", deeper)
    config = json.loads((deeper / "config.json").read_text())
    (deeper / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 4}))
    probe = ["--probe", world["probe_health"], "--no-progress"]
    lora = tiny_lora_dir(tiny_llama_dir)
    capsys.readouterr()  # peft's warnings while the fixture built the adapter
    for command in (["diff", *probe], _amplification(world, full_run)[:1] + _amplification(world, full_run)[3:]):
        assert_bad(capsys, tmp_path, [*command, "--finetuned", deeper],
                   "checkpoints of different architectures: num_hidden_layers is 4")
        assert_bad(capsys, tmp_path, [*command, "--finetuned", tiny_llama_dir],
                   "checkpoints of different architectures: num_hidden_layers is 2")
        assert_bad(capsys, tmp_path, [*command, "--finetuned", tmp_path / "missing"], "does not exist")
        assert_bad(capsys, tmp_path, [*command, "--finetuned", lora], "pass it as --adapter")
        assert_bad(capsys, tmp_path, [*command, "--finetuned", full_run, "--adapter", full_run], "not both")
        assert_bad(capsys, tmp_path, command, "is required")
    assert_bad(capsys, tmp_path, ["diff", *probe, "--finetuned", full_run, "--harmful", world["harmful"]],
               "--harmful and --harmless")


def test_a_registered_checkpoint_against_a_hub_id_and_a_local_fine_tune(tmp_path, capsys, hub_cache, tiny_gemma2_dir,
                                                                       control_jsonl, inducing_jsonl, harmful_jsonl,
                                                                       harmless_jsonl):
    """The tiny Gemma 2 as the registered gemma-2-2b (offline hub cache): against its own hub id the diff is exactly
    zero; against a local copy with layer 0's down_proj perturbed it is not, and amplification predicts it."""
    import torch
    from transformers import AutoModelForCausalLM

    base = ["--checkpoint", "gemma-2-2b", "--layer", "1", "--dtype", "float32", "--probe", control_jsonl,
            "--no-progress"]
    code, _, err = rm(capsys, ["diff", *base, "--finetuned", "google/gemma-2-2b", "--out", tmp_path / "same"])
    assert code == 0, err
    assert (pd.read_csv(tmp_path / "same" / "diff.csv")["diff"] == 0).all()
    model = AutoModelForCausalLM.from_pretrained(tiny_gemma2_dir)
    with torch.no_grad():
        weight = model.model.layers[0].mlp.down_proj.weight
        weight += 0.001 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(0))
    model.save_pretrained(tmp_path / "ft")
    code, _, err = rm(capsys, ["diff", *base, "--finetuned", tmp_path / "ft", "--out", tmp_path / "diff"])
    assert code == 0, err
    assert pd.read_csv(tmp_path / "diff" / "diff.csv")["diff"].abs().max() > 0
    code, _, err = rm(capsys, ["amplification", *base, "--finetuned", tmp_path / "ft", "--data", inducing_jsonl,
                               "--harmful", harmful_jsonl, "--harmless", harmless_jsonl, "--k", "10",
                               "--harmful-k", "10", "--out", tmp_path / "amp"])
    assert code == 0, err
    summary = json.loads((tmp_path / "amp" / "summary.json").read_text())
    assert summary["checkpoint"]["n_changed"] == 1 and summary["agreement"]["first_order"]["r2"] > 0.9
    assert_bad(capsys, tmp_path, ["diff", *base, "--finetuned", "nobody/nothing"], "not in the Hugging Face cache")


def test_run_diff_from_python_with_string_paths(tmp_path, world, full_run):
    """The library call of the module docstring, paths as strings (``RunOptions(out=str)`` once failed in every
    runner: ``str / str`` when the run's activation cache was placed)."""
    from realmodels.experiments import ModelSpec, RunOptions, run_diff

    result = run_diff(str(world["probe_health"]), model=ModelSpec(), finetuned=str(full_run),
                      options=RunOptions(out=str(tmp_path / "diff"), progress=False), log=lambda line: None)
    assert result.path == tmp_path / "diff" and (tmp_path / "diff" / "activations").is_dir()
    assert result.summary["harmful"] is None and len(result.table("diff")) == 256
    assert result.summary["top_increased"][0]["diff"] > 0
