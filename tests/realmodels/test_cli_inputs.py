"""Issue 9 on the ``realmodels`` CLI: bad input is found from files and configs before anything loads or is
written (every JSONL line, the layer against config.json, the SAE's cfg.json, invalid UTF-8, unknown roles,
conversations the chat template or the truncation leaves unusable), without importing torch; a run directory
that never produced a result takes a new config; ``--threads`` changes no output; ``--help`` shows the
configs' defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from realmodels.analysis.configs import AuditConfig, FilterConfig, SelectionConfig, StudyConfig
from realmodels.loading.session import DEFAULT_MAX_LENGTH
from tests.helpers import assert_one_line_error
from tests.realmodels.cli_helpers import assert_bad, files, rm
from tests.realmodels.tiny_models import QUESTIONS

ROOT = Path(__file__).resolve().parents[2]
GOOD = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}'
BAD_DATA = {  # file content -> the error it gives
    f"{GOOD}\n{GOOD}\n{{oops\n": "bad.jsonl:3: not valid JSON",
    "\n \n": "holds no conversations",
    f'{GOOD}\n{{"messages": [{{"role": "user", "content": "hi"}}]}}\n': "bad.jsonl:2: conversation has no assistant turn",
    GOOD.replace('"assistant"', '"asistant"'): "bad.jsonl:1: message 1 has unknown role 'asistant'",
}


@pytest.fixture
def no_loading(monkeypatch):
    """Fail if a tokenizer, a model or an SAE decoder is loaded."""
    for target in ("realmodels.loading.bundle.load_resolved_bundle", "realmodels.loading.bundle.load_tokenizer",
                   "realmodels.loading.saes.read_decoder"):
        monkeypatch.setattr(target, lambda *a, **k: pytest.fail("loaded something before the input was checked"))


def _filter(gemma_local, data, harmful_jsonl, harmless_jsonl) -> list:
    return ["filter", *gemma_local, "--data", data, "--harmful", harmful_jsonl, "--harmless", harmless_jsonl,
            "--no-progress"]


def test_bad_datasets_and_model_configs_fail_before_anything_loads(tmp_path, capsys, no_loading, gemma_local,
                                                                    tiny_gemma2_dir, tiny_sae_dir, inducing_jsonl,
                                                                    harmful_jsonl, harmless_jsonl):
    bad = tmp_path / "bad.jsonl"
    for content, match in BAD_DATA.items():
        bad.write_text(content)
        for role in ("--data", "--harmless"):  # every dataset of the command is read in full
            args = _filter(gemma_local, inducing_jsonl, harmful_jsonl, harmless_jsonl)
            args[args.index(role) + 1] = bad
            assert_bad(capsys, tmp_path, args, match)
    bad.write_bytes(GOOD.encode() + b"\n" + GOOD.replace("yo", "caf\u00e9").encode("latin-1") + b"\n")
    assert_bad(capsys, tmp_path, _filter(gemma_local, bad, harmful_jsonl, harmless_jsonl), "bad.jsonl:2: not valid UTF-8")
    data = _filter([], inducing_jsonl, harmful_jsonl, harmless_jsonl)
    model = ["--model", tiny_gemma2_dir]
    cases = [
        ([*model, "--sae", tiny_sae_dir(tiny_gemma2_dir, layer=1), "--layer", "5"],
         "layer 5 is out of range: model"),
        ([*model, "--sae", tiny_sae_dir(tiny_gemma2_dir, layer=1, d_in=32), "--layer", "1"],
         "reads vectors of size d_in=32, but model"),
        ([*model, "--sae", tiny_sae_dir(tiny_gemma2_dir, layer=0), "--layer", "1"],
         "reads blocks.0.hook_resid_post (layer 0), but layer 1 was requested"),
        ([*gemma_local, "--max-length", "513"], "--max-length 513 exceeds the context of model"),
    ]
    for extra, match in cases:
        assert_bad(capsys, tmp_path, [*data, *extra], match)


def test_bad_input_is_reported_without_importing_torch(tmp_path, tiny_gemma2_dir, tiny_sae_dir, inducing_jsonl,
                                                       harmful_jsonl, harmless_jsonl):
    """In a fresh interpreter: each error is one line, exit 2, and torch, transformers, sae-lens never load."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text(f"{GOOD}\n{GOOD}\n{{oops\n")
    small_direction = tmp_path / "direction.json"  # d_model 3: not the tiny model's 64
    small_direction.write_text(json.dumps({"layer": 0, "d_model": 3, "vector": [1.0, 0.0, 0.0], "note": ""}))
    sae = tiny_sae_dir(tiny_gemma2_dir, layer=1)
    common = ["--harmful", harmful_jsonl, "--harmless", harmless_jsonl, "--out", tmp_path / "never"]
    cases = [
        ["geometry", "--model", "/nonexistent", "--sae", sae, "--layer", "1",
         "--domain", f"code={inducing_jsonl},{inducing_jsonl}", *common],
        ["filter", "--model", tiny_gemma2_dir, "--sae", sae, "--layer", "7", "--data", inducing_jsonl, *common],
        ["audit", "--model", tiny_gemma2_dir, "--sae", sae, "--layer", "1", "--data", bad, *common],
        ["geometry", "--model", tiny_gemma2_dir, "--sae", sae, "--layer", "1", "--k", "0",
         "--domain", f"code={inducing_jsonl},{inducing_jsonl}", *common],
        # the activation workers' options (Ray is imported only to compute)
        ["audit", "--model", tiny_gemma2_dir, "--sae", sae, "--layer", "1", "--data", inducing_jsonl,
         "--workers", "2", "--num-gpus-per-worker", "-1", *common],
        ["filter", "--model", tiny_gemma2_dir, "--sae", sae, "--layer", "1", "--data", inducing_jsonl,
         "--num-gpus-per-worker", "1", *common],
        ["geometry", "--model", tiny_gemma2_dir, "--sae", sae, "--layer", "1", "--workers", "0",
         "--domain", f"code={inducing_jsonl},{inducing_jsonl}", *common],
        ["audit", "--model", tiny_gemma2_dir, "--sae", sae, "--layer", "1", "--data", inducing_jsonl,
         "--ray-address", "head", *common],
        # the fine-tuning, amplification, evaluation and mitigation commands check as cheaply
        ["finetune", "--model", tiny_gemma2_dir, "--data", inducing_jsonl, "--lr", "0", "--out", tmp_path / "never"],
        ["finetune", "--model", tiny_gemma2_dir, "--data", inducing_jsonl, "--preset", "em-nonsense"],
        ["finetune", "--model", tiny_gemma2_dir, "--data", bad],
        ["amplification", "--model", tiny_gemma2_dir, "--sae", sae, "--layer", "1", "--adapter", tmp_path,
         "--probe", inducing_jsonl, "--data", inducing_jsonl, *common],
        ["evaluate", "--model", tiny_gemma2_dir, "--aligned-threshold", "101", "--out", tmp_path / "never"],
        ["evaluate", "--model", tiny_gemma2_dir, "--questions", bad, "--out", tmp_path / "never"],
        ["evaluate", "--model", tiny_gemma2_dir, "--ablate", small_direction, "--out", tmp_path / "never"],
        ["evaluate", "--generate-endpoint", "http://127.0.0.1:9/v1", "--generate-model", "m", "--ablate",
         small_direction, "--out", tmp_path / "never"],
        ["evaluate", "--model", tiny_gemma2_dir, "--steer", f"{small_direction}=1", "--out", tmp_path / "never"],
        ["evaluate", "--clamp", "100000=0", "--out", tmp_path / "never"],  # the embedded organism's SAE: 256
        ["evaluate", "--steer", "feature:1=nan", "--out", tmp_path / "never"],
        ["organism", "causal", "--harmful-k", "257", "--out", tmp_path / "never"],
        ["organism", "causal", "--alpha", "0", "--out", tmp_path / "never"],
        ["mitigate", "--model", tiny_gemma2_dir, "--data", inducing_jsonl, "--budget", "1.5", *common],
        ["mitigate", "--model", tiny_gemma2_dir, "--data", inducing_jsonl, "--ray-address", "head", *common],
    ]
    script = ("import json, sys\nfrom cli.realmodels_app import main\ncodes = []\n"
              "for args in json.loads(sys.argv[1]):\n    sys.argv = ['realmodels', *args]\n"
              "    try:\n        main()\n    except SystemExit as exc:\n        codes.append(exc.code)\n"
              "heavy = sorted(m for m in ('torch', 'transformers', 'sae_lens', 'scipy', 'ray') if m in sys.modules)\n"
              "print(json.dumps({'codes': codes, 'heavy': heavy}))\n")
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", script, json.dumps([[str(a) for a in case] for case in cases])],
                            capture_output=True, text=True, cwd=ROOT, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    elapsed = time.perf_counter() - started
    report = json.loads(result.stdout.strip().splitlines()[-1])
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert report == {"codes": [2] * len(cases), "heavy": []}, result.stderr
    assert len(errors) == len(cases) and all(line.startswith("error:") for line in errors), result.stderr
    assert elapsed < 30  # ~1 s on a quiet machine; the bound only catches a regression to heavy imports


def test_conversations_the_tokenizer_cannot_use_fail_before_the_model_loads(tmp_path, capsys, monkeypatch,
                                                                             gemma_local, harmful_jsonl,
                                                                             harmless_jsonl, write_chat_jsonl):
    for target in ("realmodels.loading.bundle.load_resolved_bundle", "realmodels.loading.saes.read_decoder"):
        monkeypatch.setattr(target, lambda *a, **k: pytest.fail("loaded weights before the input was checked"))
    long_prompt = [{"role": "user", "content": " ".join(QUESTIONS)}, {"role": "assistant", "content": "Yes."}]
    data = write_chat_jsonl(tmp_path / "long.jsonl", [long_prompt[:1] + [{"role": "assistant", "content": "ok"}],
                                                      long_prompt])
    args = [*_filter(gemma_local, data, harmful_jsonl, harmless_jsonl), "--max-length", "32"]
    assert_bad(capsys, tmp_path, args, "long.jsonl:1: no assistant tokens within the first 32 tokens")
    system = write_chat_jsonl(tmp_path / "system.jsonl", [[{"role": "system", "content": "be brief"}, *long_prompt]])
    assert_bad(capsys, tmp_path, _filter(gemma_local, system, harmful_jsonl, harmless_jsonl),
               "system.jsonl:1: the chat template rejects this conversation")  # Gemma 2 has no system role


def test_default_max_length_truncates_with_a_warning(tmp_path, capsys, gemma_local, inducing_jsonl, harmful_jsonl,
                                                     harmless_jsonl, write_chat_jsonl):
    """No --max-length: the tiny model's context (512 tokens, below DEFAULT_MAX_LENGTH) bounds every sample."""
    lines = [json.loads(line)["messages"] for line in inducing_jsonl.read_text().splitlines()]
    huge = [lines[1][0], {"role": "assistant", "content": lines[1][1]["content"] * 5000}]  # ~360 kB
    data = write_chat_jsonl(tmp_path / "huge.jsonl", [*lines, huge])
    out = tmp_path / "run"
    code, _, err = rm(capsys, [*_filter(gemma_local, data, harmful_jsonl, harmless_jsonl), "--out", out])
    assert code == 0, err
    assert f"huge.jsonl: 1 of 7 conversations are longer than {min(512, DEFAULT_MAX_LENGTH)} tokens" in err
    assert json.loads((out / "config.json").read_text())["model"]["max_length"] is None  # null: the default
    assert len((out / "filtered.jsonl").read_text().splitlines()) + 1 == 7  # 10% of 7 removed


def test_a_bom_file_gives_the_plain_files_results(tmp_path, capsys, gemma_local, inducing_jsonl, harmful_jsonl,
                                                  harmless_jsonl):
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + inducing_jsonl.read_bytes())
    for name, data in (("plain", inducing_jsonl), ("bom", bom)):
        code, _, err = rm(capsys, [*_filter(gemma_local, data, harmful_jsonl, harmless_jsonl), "--out", tmp_path / name])
        assert code == 0, err
    for name in ("scores.csv", "filtered.jsonl", "removed.jsonl"):
        assert (tmp_path / "bom" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes(), name


def test_a_run_directory_without_a_result_takes_a_new_config(tmp_path, capsys, gemma_local, inducing_jsonl,
                                                              harmful_jsonl, harmless_jsonl):
    out = tmp_path / "run"
    base = [*_filter(gemma_local, inducing_jsonl, harmful_jsonl, harmless_jsonl), "--out", out]
    base[base.index("--harmless") + 1] = harmful_jsonl  # the same data twice: no harmful feature (found late)
    code, _, err = rm(capsys, base)
    assert_one_line_error(code, err)
    assert "no feature is more active" in err
    caches = {p.name: p.stat().st_mtime_ns for p in (out / "activations").iterdir()}
    base[base.index("--harmless") + 1] = harmless_jsonl  # fixed: the rerun starts the new run in the same --out
    code, stdout, err = rm(capsys, base)
    assert code == 0, err
    assert "produced no result" in stdout
    assert json.loads((out / "config.json").read_text())["data"]["harmless"]["path"] == str(harmless_jsonl)
    assert all((out / "activations" / name).stat().st_mtime_ns == mtime for name, mtime in caches.items())
    code, _, err = rm(capsys, [*base, "--fraction", "0.3"])  # a run with results is never replaced
    assert_one_line_error(code, err)
    assert "different config" in err
    (out / "summary.json").unlink()  # partial results (stage files) of the recorded config: refused too
    code, _, err = rm(capsys, [*base, "--fraction", "0.3"])
    assert_one_line_error(code, err)
    assert "different config" in err


def test_threads_change_no_output_and_main_leaves_torch_threads_alone(tmp_path, capsys, gemma_local, inducing_jsonl,
                                                                      harmful_jsonl, harmless_jsonl):
    torch.set_num_threads(3)
    try:
        assert rm(capsys, ["checkpoints"])[0] == 0
        assert torch.get_num_threads() == 3  # main() used to force min(2, threads)
        for n in (1, 2):
            code, _, err = rm(capsys, [*_filter(gemma_local, inducing_jsonl, harmful_jsonl, harmless_jsonl),
                                       "--threads", str(n), "--out", tmp_path / str(n)])
            assert code == 0, err
            assert torch.get_num_threads() == n
    finally:
        torch.set_num_threads(1)  # the suite's setting (tests/conftest.py)
    results = [{k: v for k, v in files(tmp_path / str(n)).items() if not k.endswith(".pt")} for n in (1, 2)]
    assert results[0] == results[1]
    assert_bad(capsys, tmp_path, [*_filter(gemma_local, inducing_jsonl, harmful_jsonl, harmless_jsonl),
                                  "--threads", "0"], "--threads")


def _help(capsys, command: str) -> str:
    code, out, _ = rm(capsys, [command, "--help"])
    assert code == 0
    return " ".join(out.replace("│", " ").split())  # one line, without rich's panel borders


@pytest.mark.parametrize(("command", "defaults"), [
    ("geometry", {"--k": SelectionConfig().k, "--n-permutations": StudyConfig().n_permutations,
                  "--n-bootstrap": StudyConfig().n_bootstrap, "--proximity": StudyConfig().proximity}),
    ("filter", {"--fraction": FilterConfig().fraction, "--representation": FilterConfig().representation,
                "--harmful-k": SelectionConfig().harmful_k}),
    ("audit", {"--n-null": AuditConfig().n_null, "--weighting": AuditConfig().weighting}),
])
def test_help_shows_the_configs_defaults_and_the_seed_of_each_command(capsys, command, defaults):
    text = _help(capsys, command)
    for option, value in {**defaults, "--threads": 1, "--batch-size": 8}.items():
        assert f"[default: {value}]" in text.split(option, 1)[1].split(" --", 1)[0], option
    assert f"at most {DEFAULT_MAX_LENGTH}]" in text
    seed_help = text.split("--seed", 1)[1].split(" --", 1)[0]
    assert ("random removal" in seed_help) == (command == "filter"), seed_help


@pytest.mark.parametrize("toml, match", [
    ("study = 5\n", "study must be a table [study], got 5"),
    ("selection = 'x'\n", "selection must be a table [selection], got 'x'"),
    ("domains = 5\n", "'domains' must be a table of [domains.NAME] tables"),
    ("harmful = 5\n", "'harmful' must be a file path string, got 5"),
])
def test_geometry_config_keys_of_the_wrong_kind_are_one_line(tmp_path, capsys, no_loading, gemma_local,
                                                             inducing_jsonl, control_jsonl, harmful_jsonl,
                                                             harmless_jsonl, toml, match):
    """Issue 19: ``study = 5`` in geometry's --config was a traceback."""
    config = tmp_path / "geometry.toml"
    config.write_text(toml)
    assert_bad(capsys, tmp_path, ["geometry", *gemma_local, "--config", config, "--domain",
                                  f"d={inducing_jsonl},{control_jsonl}", "--harmful", harmful_jsonl, "--harmless",
                                  harmless_jsonl, "--no-progress"], match)
