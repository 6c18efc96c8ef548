"""``realmodels amplification`` end to end on a tiny Gemma 2 + saved SAE + LoRA adapter: every output written,
the summary's keys, the first-order prediction agrees with the measurement for a small adapter, a rerun says
it is already finished and changes nothing; bad input is one line, exit 2, with nothing written."""

from __future__ import annotations

import json
import shutil

from pathlib import Path

import pandas as pd
import pytest

from realmodels.experiments.amplification import training_data
from tests.realmodels.cli_helpers import assert_bad, files, rm
from theory.errors import InputError

COLUMNS = ["feature", "similarity", "predicted", "predicted_isotropic", "measured", "predicted_output",
           "measured_output", "harmful", "target"]
AGREEMENTS = ("first_order", "isotropic", "similarity", "first_order_output", "isotropic_vs_first_order")


def _args(gemma_local, adapter, control_jsonl, inducing_jsonl, harmful_jsonl, harmless_jsonl) -> list:
    return ["amplification", *gemma_local, "--adapter", adapter, "--probe", control_jsonl, "--data", inducing_jsonl,
            "--harmful", harmful_jsonl, "--harmless", harmless_jsonl, "--k", "10", "--harmful-k", "10",
            "--batch-size", "4", "--no-progress"]


def test_amplification_end_to_end(tmp_path, capsys, gemma_local, tiny_gemma2_dir, tiny_lora_dir, control_jsonl,
                                  inducing_jsonl, harmful_jsonl, harmless_jsonl):
    out = tmp_path / "run"
    args = [*_args(gemma_local, tiny_lora_dir(tiny_gemma2_dir, scale=0.005), control_jsonl, inducing_jsonl,
                   harmful_jsonl, harmless_jsonl), "--out", out]
    code, stdout, err = rm(capsys, args)
    assert code == 0, err
    assert "first order (JVP)" in stdout
    for name in ("amplification.csv", "amplification.png", "amplification.svg", "summary.json", "config.json",
                 "features/harmful.json", "features/dataset.json", "stages/measurement.json"):
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "amplification.csv")
    assert list(table.columns) == COLUMNS and len(table) == 256 and table["feature"].tolist() == list(range(256))
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["agreement"]) == set(AGREEMENTS)
    assert summary["n_probes"] == 6 and summary["n_tokens"] > 0 and summary["n_features"] == 256
    assert len(summary["harmful"]["features"]) == 10 == table["harmful"].sum()
    assert {"mean_measured", "mean_predicted", "mean_predicted_isotropic"} <= set(summary["harmful"])
    assert summary["adapter"]["n_modules"] == 2 * 7 and summary["notes"]
    first = summary["agreement"]["first_order"]
    assert first["r2"] > 0.95 and first["spearman"] > 0.95 and 0.9 < first["slope"] < 1.1
    assert summary["agreement"]["first_order_output"]["r2"] > 0.9
    assert table["measured"].abs().max() > 0
    config = json.loads((out / "config.json").read_text())
    assert config["command"] == "amplification" and set(config["data"]) == {"probe", "train", "control", "harmful",
                                                                            "harmless"}

    snapshot = files(out)
    code, stdout, _ = rm(capsys, args)
    assert code == 0 and "already finished" in stdout
    assert files(out) == snapshot


def test_training_data_defaults_to_the_finetune_runs(tmp_path, tiny_gemma2_dir, tiny_lora_dir, inducing_jsonl,
                                                     control_jsonl):
    run = tmp_path / "finetune-run"
    shutil.copytree(tiny_lora_dir(tiny_gemma2_dir), run / "adapter")
    (run / "config.json").write_text(json.dumps({"data": {"train": {"path": str(inducing_jsonl), "sha256": "x"}}}))
    assert Path(training_data(run, None)).resolve() == inducing_jsonl.resolve()
    assert training_data(run, control_jsonl) == control_jsonl  # --data wins
    (run / "config.json").write_text(json.dumps({"data": {}}))
    with pytest.raises(InputError, match="records no training data"):
        training_data(run, None)


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, gemma_local, tiny_gemma2_dir, tiny_llama_dir,
                                                  tiny_lora_dir, control_jsonl, inducing_jsonl, harmful_jsonl,
                                                  harmless_jsonl):
    def args(adapter, data=inducing_jsonl):
        full = _args(gemma_local, adapter, control_jsonl, data, harmful_jsonl, harmless_jsonl)
        return full if data is not None else [a for a in full if a not in ("--data", None)]

    assert_bad(capsys, tmp_path, args(tiny_lora_dir(tiny_llama_dir)), "was trained on base model")
    not_peft = tmp_path / "not-peft"
    not_peft.mkdir()
    (not_peft / "weights.bin").write_bytes(b"")
    assert_bad(capsys, tmp_path, args(not_peft), "is not in peft's format")
    assert_bad(capsys, tmp_path, args(tiny_lora_dir(tiny_gemma2_dir), data=None), "--data is required")
    assert_bad(capsys, tmp_path, [*args(tiny_lora_dir(tiny_gemma2_dir)), "--probe", tmp_path / "missing.jsonl"],
               "does not exist")
