"""``--adapter`` on the ``realmodels`` analysis commands (geometry, filter, audit): they run on base model +
peft adapter, their numbers change, the adapter is part of the run's config and of the activation caches' key
(base and fine-tuned never share a cache file), a rerun resumes, and a bad adapter is one line before anything
loads (without importing torch)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import assert_one_line_error
from tests.realmodels.cli_helpers import FAST, assert_bad, files, rm

ROOT = Path(__file__).resolve().parents[2]


def _filter(gemma_local, inducing_jsonl, harmful_jsonl, harmless_jsonl) -> list:
    return ["filter", *gemma_local, "--data", inducing_jsonl, "--harmful", harmful_jsonl, "--harmless",
            harmless_jsonl, "--fraction", "0.5", "--no-progress"]


def _caches(cache: Path) -> set[str]:
    return {path.name for path in cache.glob("activations-*.pt")}


def test_filter_with_an_adapter_scores_the_fine_tuned_model(tmp_path, capsys, gemma_local, tiny_gemma2_dir,
                                                            tiny_lora_dir, inducing_jsonl, harmful_jsonl,
                                                            harmless_jsonl):
    adapter, other = tiny_lora_dir(tiny_gemma2_dir), tiny_lora_dir(tiny_gemma2_dir, seed=1)
    cache = tmp_path / "cache"
    base = [*_filter(gemma_local, inducing_jsonl, harmful_jsonl, harmless_jsonl), "--cache-dir", cache]
    assert rm(capsys, [*base, "--out", tmp_path / "base"])[0] == 0
    base_caches = _caches(cache)
    args = [*base, "--adapter", adapter, "--out", tmp_path / "tuned"]
    code, _, err = rm(capsys, args)
    assert code == 0, err
    assert "warning" not in err  # loading the adapter is quiet
    assert len(_caches(cache) - base_caches) == len(base_caches) == 3  # its own caches: train, harmful, harmless
    config = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert config["model"]["adapter"] == str(adapter.resolve())
    assert "adapter" not in json.loads((tmp_path / "base" / "config.json").read_text())["model"]
    scores = {name: pd.read_csv(tmp_path / name / "scores.csv")["score"] for name in ("base", "tuned")}
    assert (scores["base"] - scores["tuned"]).abs().max() > 1e-6

    snapshot = files(tmp_path / "tuned")
    code, stdout, _ = rm(capsys, args)
    assert code == 0 and "already finished" in stdout
    assert files(tmp_path / "tuned") == snapshot

    for extra in (["--adapter", other], []):
        code, _, err = rm(capsys, [*base, *extra, "--out", tmp_path / "tuned"])
        assert_one_line_error(code, err)
        assert "holds a run with a different config" in err  # another adapter, or none, is another run


def test_geometry_with_a_finetune_run_directory(tmp_path, capsys, gemma_local, tiny_gemma2_dir, tiny_lora_dir,
                                                inducing_jsonl, control_jsonl, harmful_jsonl, harmless_jsonl):
    run = tmp_path / "finetune-run"
    shutil.copytree(tiny_lora_dir(tiny_gemma2_dir), run / "adapter")
    common = ["geometry", *gemma_local, "--domain", f"code={inducing_jsonl},{control_jsonl}", "--harmful",
              harmful_jsonl, "--harmless", harmless_jsonl, "--k", "12", "--harmful-k", "12", *FAST,
              "--cache-dir", tmp_path / "cache"]
    assert rm(capsys, [*common, "--out", tmp_path / "base"])[0] == 0
    args = [*common, "--adapter", run, "--out", tmp_path / "tuned"]
    code, _, err = rm(capsys, args)
    assert code == 0, err
    tables = {name: pd.read_csv(tmp_path / name / "domains.csv") for name in ("base", "tuned")}
    assert not tables["base"].equals(tables["tuned"])
    assert json.loads((tmp_path / "tuned" / "config.json").read_text())["model"]["adapter"] == str(run.resolve())

    code, stdout, _ = rm(capsys, args)
    assert code == 0 and "already finished" in stdout


def test_audit_with_an_adapter_and_its_cached_rerun(tmp_path, capsys, gemma_local, tiny_gemma2_dir, tiny_lora_dir,
                                                    inducing_jsonl, control_jsonl, harmful_jsonl, harmless_jsonl,
                                                    monkeypatch):
    common = ["audit", *gemma_local, "--data", inducing_jsonl, "--control", control_jsonl, "--harmful",
              harmful_jsonl, "--harmless", harmless_jsonl, "--k", "8", "--harmful-k", "8", "--n-null", "100",
              "--no-progress", "--cache-dir", tmp_path / "cache"]
    args = [*common, "--adapter", tiny_lora_dir(tiny_gemma2_dir, scale=0.2), "--out", tmp_path / "tuned"]
    for name, run_args in (("base", [*common, "--out", tmp_path / "base"]), ("tuned", args)):
        code, _, err = rm(capsys, run_args)
        assert code == 0, err
    summaries = {name: json.loads((tmp_path / name / "summary.json").read_text()) for name in ("base", "tuned")}
    assert summaries["base"] != summaries["tuned"]
    assert 0.0 < summaries["tuned"]["safety_score"] <= 1.0

    # audit always recomputes its summary (see realmodels_app.audit), from the fine-tuned model's cached stages
    monkeypatch.setattr("realmodels.loading.bundle.load_resolved_bundle",
                        lambda *a, **k: pytest.fail("the model was loaded although its activations are cached"))
    code, _, err = rm(capsys, args)
    assert code == 0, err
    assert json.loads((tmp_path / "tuned" / "summary.json").read_text()) == summaries["tuned"]


def _bad_adapters(tmp_path: Path, tiny_gemma2_dir, tiny_llama_dir, tiny_lora_dir) -> list[tuple[Path, str]]:
    (tmp_path / "empty").mkdir()
    shutil.copytree(tiny_gemma2_dir, tmp_path / "full-run" / "model")
    layers = shutil.copytree(tiny_lora_dir(tiny_gemma2_dir), tmp_path / "layers")
    config = json.loads((layers / "adapter_config.json").read_text())
    (layers / "adapter_config.json").write_text(json.dumps({**config, "layers_to_transform": [0, 2]}))
    return [(tmp_path / "missing", "does not exist"),
            (tmp_path / "empty", "is not in peft's format"),
            (tiny_lora_dir(tiny_llama_dir), f"was trained on base model {tiny_llama_dir}, not on"),
            (tmp_path / "full-run", f"is a full fine-tuning run (no adapter): pass --model {tmp_path / 'full-run'}"),
            (layers, "transforms layers [0, 2], but")]


def test_bad_adapters_fail_before_anything_loads(tmp_path, capsys, monkeypatch, gemma_local, tiny_gemma2_dir,
                                                 tiny_llama_dir, tiny_lora_dir, inducing_jsonl, control_jsonl,
                                                 harmful_jsonl, harmless_jsonl):
    for target in ("realmodels.loading.bundle.load_resolved_bundle", "realmodels.loading.bundle.load_tokenizer",
                   "realmodels.loading.saes.read_decoder"):
        monkeypatch.setattr(target, lambda *a, **k: pytest.fail("loaded something before the adapter was checked"))
    data = ["--harmful", harmful_jsonl, "--harmless", harmless_jsonl, "--no-progress"]
    commands = [["geometry", *gemma_local, "--domain", f"code={inducing_jsonl},{control_jsonl}", *data],
                ["filter", *gemma_local, "--data", inducing_jsonl, *data],
                ["audit", *gemma_local, "--data", inducing_jsonl, *data]]
    for path, match in _bad_adapters(tmp_path, tiny_gemma2_dir, tiny_llama_dir, tiny_lora_dir):
        for command in commands:
            assert_bad(capsys, tmp_path, [*command, "--adapter", path], match)


def test_a_bad_adapter_is_reported_without_importing_torch(tmp_path, tiny_gemma2_dir, tiny_sae_dir, tiny_llama_dir,
                                                           tiny_lora_dir, inducing_jsonl, harmful_jsonl,
                                                           harmless_jsonl):
    args = ["filter", "--model", tiny_gemma2_dir, "--sae", tiny_sae_dir(tiny_gemma2_dir, layer=1), "--layer", "1",
            "--data", inducing_jsonl, "--harmful", harmful_jsonl, "--harmless", harmless_jsonl,
            "--adapter", tiny_lora_dir(tiny_llama_dir), "--out", tmp_path / "never"]
    script = ("import json, sys\nfrom cli.realmodels_app import main\nsys.argv = ['realmodels', *sys.argv[1:]]\n"
              "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
              "heavy = sorted(m for m in ('torch', 'transformers', 'sae_lens', 'peft') if m in sys.modules)\n"
              "print(json.dumps({'code': code, 'heavy': heavy}))\n")
    result = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                            cwd=ROOT, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"code": 2, "heavy": []}, result.stderr
    assert_one_line_error(2, result.stderr)
    assert "was trained on base model" in result.stderr and not (tmp_path / "never").exists()


def test_help_lists_the_adapter_option(capsys):
    for command in ("geometry", "filter", "audit"):
        code, stdout, _ = rm(capsys, [command, "--help"])
        assert code == 0 and "--adapter" in stdout and "peft adapter directory" in stdout
