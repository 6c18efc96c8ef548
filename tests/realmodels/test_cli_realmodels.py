"""End-to-end `realmodels` CLI on the tiny models (offline): every command's outputs, resume, bad input.

Tiny random models and SAEs carry no real misalignment signal: these tests check the pipeline (files,
shapes, determinism, resume, errors), not the scientific result (see analysis/test_geometry.py for that)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.helpers import assert_one_line_error
from tests.realmodels.cli_helpers import FAST, assert_bad, files, rm


def test_checkpoints_lists_the_registry(capsys):
    code, out, err = rm(capsys, ["checkpoints"])
    assert code == 0, err
    for name in ("gemma-2-2b", "gemma-2-9b", "gemma-2-27b", "llama-3.1-8b", "gpt-oss-20b", "gemma-3-270m",
                 "gemma-scope-2-270m-pt-res"):
        assert name in out
    assert "GB" in out


def test_geometry_two_domains_outputs_and_resume(tmp_path, capsys, gemma_local, inducing_jsonl, control_jsonl,
                                                 harmful_jsonl, harmless_jsonl, monkeypatch):
    out = tmp_path / "geo"
    args = ["geometry", *gemma_local, "--domain", f"code={inducing_jsonl},{control_jsonl}",
            "--domain", f"swapped={control_jsonl},{inducing_jsonl}", "--harmful", harmful_jsonl,
            "--harmless", harmless_jsonl, "--k", "12", "--harmful-k", "12", *FAST, "--out", out]
    code, stdout, err = rm(capsys, args)
    assert code == 0, err
    for name in ("config.json", "summary.json", "domains.csv", "features.csv", "proximity.png", "proximity.svg",
                 "differences.png", "differences.svg", "features/harmful.json", "features/code-inducing.json",
                 "features/code-control.json", "geometry/code.json", "geometry/swapped.json", "geometry/all.json"):
        assert (out / name).is_file(), name
    assert list((out / "activations").glob("activations-*.pt")), "activation cache"
    table = pd.read_csv(out / "domains.csv")
    assert list(table["domain"]) == ["code", "swapped", "all"]
    code_row, swapped_row = table.iloc[0], table.iloc[1]
    # swapping inducing and control swaps the two feature sets (features are tied by mutual contrast)
    assert code_row["mean_inducing"] == pytest.approx(swapped_row["mean_control"])
    assert code_row["difference"] == pytest.approx(-swapped_row["difference"])
    features = pd.read_csv(out / "features.csv")
    assert {"domain", "set", "feature", "proximity", "nearest_harmful", "selection_score"} <= set(features.columns)
    assert features["proximity"].between(-1, 1.0001).all()
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["harmful_features"]) <= 12 and summary["null_pool_size"] > 0
    assert "proximity to harmful features" in stdout

    snapshot = files(out)
    code, stdout, _ = rm(capsys, args)
    assert code == 0 and "already finished" in stdout
    assert files(out) == snapshot

    # killed after the feature stage: the rerun needs only the decoder, never the model
    for name in ("summary.json", "domains.csv", "geometry/code.json", "geometry/swapped.json", "geometry/all.json"):
        (out / name).unlink()

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded although every activation-derived result was saved")

    monkeypatch.setattr("realmodels.loading.bundle.load_resolved_bundle", no_model)
    code, _, err = rm(capsys, args)
    assert code == 0, err
    assert files(out)["domains.csv"] == snapshot["domains.csv"]


def test_geometry_from_toml_with_split_and_only(tmp_path, capsys, gemma_local, inducing_jsonl, control_jsonl,
                                                harmful_jsonl, harmless_jsonl):
    cfg = tmp_path / "study.toml"
    cfg.write_text(f'harmful = "{harmful_jsonl}"\nharmless = "{harmless_jsonl}"\n'
                   f'[domains.code]\ninducing = "{inducing_jsonl}"\ncontrol = "{control_jsonl}"\n'
                   f'[domains.other]\ninducing = "{control_jsonl}"\ncontrol = "{inducing_jsonl}"\n'
                   '[selection]\nk = 10\nharmful_k = 10\nselection_fraction = 0.5\ncriterion = "freq_diff"\n'
                   '[study]\nproximity = "mean_top_k"\nproximity_k = 3\n')
    out = tmp_path / "geo"
    code, _, err = rm(capsys, ["geometry", *gemma_local, "--config", cfg, "--only", "code", *FAST, "--out", out])
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert list(config["data"]["domains"]) == ["code"]
    assert config["selection"]["criterion"] == "freq_diff" and config["study"]["proximity"] == "mean_top_k"
    assert list(pd.read_csv(out / "domains.csv")["domain"]) == ["code"]  # one domain: no pooled row
    heldout = json.loads((out / "summary.json").read_text())["heldout"]
    assert set(heldout) == {"harmful", "code/inducing", "code/control"}
    assert all(0.0 <= h["replication"] <= 1.0 for h in heldout.values())


@pytest.mark.parametrize("checkpoint, layer", [("gemma-2-2b", 0), ("llama-3.1-8b", 1), ("gpt-oss-20b", 3)])
def test_filter_on_each_family_from_the_hub_cache(tmp_path, capsys, hub_cache, checkpoint, layer, inducing_jsonl,
                                                  harmful_jsonl, harmless_jsonl):
    out = tmp_path / "filter"
    args = ["filter", "--checkpoint", checkpoint, "--layer", str(layer), "--data", inducing_jsonl,
            "--harmful", harmful_jsonl, "--harmless", harmless_jsonl, "--harmful-k", "16", "--fraction", "0.5",
            "--ignore-memory-check", "--no-progress", "--out", out]  # the registry sizes are the real models'

    code, stdout, err = rm(capsys, args)
    assert code == 0, err
    lines = [line for line in inducing_jsonl.read_text().splitlines() if line.strip()]
    kept = (out / "filtered.jsonl").read_text().splitlines()
    removed = (out / "removed.jsonl").read_text().splitlines()
    assert len(removed) == 3 and len(kept) == 3 and sorted(kept + removed) == sorted(lines)
    assert kept == [line for line in lines if line in kept]  # original order
    scores = pd.read_csv(out / "scores.csv")
    assert len(scores) == 6 and scores["removed"].sum() == 3
    assert scores.loc[scores["removed"], "score"].min() >= scores.loc[~scores["removed"], "score"].max()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "geometric" and 0.0 <= summary["score_validity"]["auc"] <= 1.0
    assert (out / "scores.png").is_file() and (out / "scores.svg").is_file()
    assert "filtering" in stdout


def test_filter_random_baseline_and_feature_representation(tmp_path, capsys, gemma_local, inducing_jsonl,
                                                           harmful_jsonl, harmless_jsonl):
    base = ["filter", *gemma_local, "--data", inducing_jsonl, "--harmful", harmful_jsonl, "--harmless",
            harmless_jsonl, "--fraction", "0.34", "--no-progress", "--cache-dir", tmp_path / "cache"]
    runs = {}
    for name, extra in [("geo", []), ("rnd", ["--random", "--seed", "1"]), ("rnd2", ["--random", "--seed", "1"]),
                        ("feat", ["--representation", "features", "--reduce", "mean"])]:
        code, _, err = rm(capsys, [*base, *extra, "--out", tmp_path / name])
        assert code == 0, err
        runs[name] = pd.read_csv(tmp_path / name / "scores.csv")
    assert runs["rnd"]["removed"].sum() == runs["geo"]["removed"].sum() == 2
    assert runs["rnd"].equals(runs["rnd2"])
    assert runs["rnd"]["score"].equals(runs["geo"]["score"])  # same scores, different removal rule
    assert json.loads((tmp_path / "rnd" / "summary.json").read_text())["method"] == "random"
    assert not runs["feat"]["score"].equals(runs["geo"]["score"])
    assert list((tmp_path / "cache").glob("activations-*.pt"))


def test_filter_resume_needs_neither_model_nor_decoder(tmp_path, capsys, gemma_local, inducing_jsonl, harmful_jsonl,
                                                       harmless_jsonl, monkeypatch):
    out = tmp_path / "filter"
    args = ["filter", *gemma_local, "--data", inducing_jsonl, "--harmful", harmful_jsonl, "--harmless",
            harmless_jsonl, "--fraction", "0.5", "--selection-fraction", "0.6", "--no-progress", "--out", out]
    assert rm(capsys, args)[0] == 0
    snapshot = files(out)
    for name in ("summary.json", "filtered.jsonl", "removed.jsonl", "scores.csv"):
        (out / name).unlink()  # killed after scoring

    def refuse(*args, **kwargs):
        raise AssertionError("loaded a model or decoder although the scores were saved")

    monkeypatch.setattr("realmodels.loading.bundle.load_resolved_bundle", refuse)
    monkeypatch.setattr("realmodels.loading.saes.read_decoder", refuse)
    code, _, err = rm(capsys, args)
    assert code == 0, err
    assert files(out) == snapshot
    assert json.loads((out / "summary.json").read_text())["score_validity"]["held_out"] is True


@pytest.mark.parametrize("family", ["gemma2", "llama", "gptoss"])
def test_audit_report(tmp_path, capsys, request, family, tiny_sae_dir, inducing_jsonl, control_jsonl, harmful_jsonl,
                      harmless_jsonl):
    model_dir = request.getfixturevalue(f"tiny_{family}_dir")
    local = ["--model", model_dir, "--sae", tiny_sae_dir(model_dir, layer=1), "--layer", "1"]
    out = tmp_path / "audit"
    args = ["audit", *local, "--data", inducing_jsonl, "--control", control_jsonl, "--harmful", harmful_jsonl,
            "--harmless", harmless_jsonl, "--k", "8", "--harmful-k", "8", "--n-null", "200", "--top", "5",
            "--no-progress", "--out", out]
    code, stdout, err = rm(capsys, args)
    assert code == 0, err
    report = json.loads((out / "audit.json").read_text())
    assert 0.0 < report["safety_score"] <= 1.0 and report["risk_level"] in {"high", "elevated", "typical"}
    assert len(report["features"]) == report["n_harmful_features"] <= 8
    assert "isotropic-kernel approximation" in report["assumption"]
    table = pd.read_csv(out / "audit.csv")
    assert table["relative_amplification"].is_monotonic_decreasing
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["top_harmful_features"]) <= 5 and "features" not in summary
    for name in ("audit.png", "audit.svg", "features/dataset.json", "features/harmful.json"):
        assert (out / name).is_file(), name
    assert "geometric safety score" in stdout and "isotropic" in stdout
    snapshot = files(out)
    code, _, _ = rm(capsys, args)
    assert code == 0 and files(out)["audit.json"] == snapshot["audit.json"]


def test_geometry_bad_inputs_are_one_line_errors(tmp_path, capsys, gemma_local, inducing_jsonl, control_jsonl,
                                                 harmful_jsonl, harmless_jsonl):
    data = ["--harmful", harmful_jsonl, "--harmless", harmless_jsonl]
    dom = ["--domain", f"code={inducing_jsonl},{control_jsonl}"]
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text('harmful = "h.jsonl"\nsurprise = 1\n')
    cases = [
        ([*gemma_local, *data], "no domain given"),
        ([*gemma_local, *data, "--domain", f"code={inducing_jsonl}"], "NAME=INDUCING.jsonl,CONTROL.jsonl"),
        ([*gemma_local, *data, *dom, "--only", "legal"], "unknown domain 'legal'"),
        ([*gemma_local, *data, "--domain", f"all={inducing_jsonl},{control_jsonl}"], "reserved"),
        ([*gemma_local, *data, *dom, "--domain", f"code={control_jsonl},{inducing_jsonl}"], "given twice"),
        ([*gemma_local, *data, "--domain", f"code={tmp_path / 'missing.jsonl'},{control_jsonl}"], "does not exist"),
        ([*gemma_local, "--harmful", tmp_path / "nope.jsonl", "--harmless", harmless_jsonl, *dom], "does not exist"),
        ([*gemma_local, *dom], "--harmful and --harmless"),
        ([*gemma_local, *data, *dom, "--k", "0"], "at least 1"),
        ([*gemma_local, *data, *dom, "--selection-fraction", "1.5"], "(0, 1)"),
        ([*gemma_local, *data, *dom, "--criterion", "ratio"], "criterion"),
        ([*gemma_local, *data, *dom, "--proximity", "euclid"], "proximity"),
        (["--checkpoint", "gemma-7", *data, *dom], "unknown checkpoint"),
        (["--checkpoint", "gemma-2-2b", "--layer", "99", *data, *dom], "no SAE at layer 99"),
        (["--checkpoint", "gemma-2-2b", *data, *dom], "--layer is required"),
        (["--checkpoint", "gemma-2-2b", "--model", "x", "--layer", "0", *data, *dom], "not both"),
        ([*gemma_local[:4], *data, *dom], "--layer is required"),
        ([*gemma_local[:2], *data, *dom], "no SAE given"),
        ([*gemma_local, *data, *dom, "--dtype", "fp8"], "unknown dtype 'fp8'"),  # checked before the run directory
        ([*gemma_local, *data, *dom, "--batch-size", "0"], "--batch-size must be at least 1"),
        ([*gemma_local[:2], "--sae", tmp_path / "no-sae", "--layer", "1", *data, *dom], "SAE directory"),
        ([*gemma_local, "--config", bad_toml], "unknown key 'surprise'"),
        ([*gemma_local, "--config", tmp_path / "none.toml"], "does not exist"),
    ]
    for args, match in cases:
        assert_bad(capsys, tmp_path, ["geometry", *args], match)


def test_filter_and_audit_bad_inputs_are_one_line_errors(tmp_path, capsys, gemma_local, inducing_jsonl,
                                                         harmful_jsonl, harmless_jsonl):
    data = ["--data", inducing_jsonl, "--harmful", harmful_jsonl, "--harmless", harmless_jsonl]
    for fraction in ("1.0", "-0.1", "1.5"):
        assert_bad(capsys, tmp_path, ["filter", *gemma_local, *data, "--fraction", fraction], "[0, 1)")
    assert_bad(capsys, tmp_path, ["filter", *gemma_local, *data, "--representation", "logits"], "representation")
    assert_bad(capsys, tmp_path, ["filter", *gemma_local, "--data", tmp_path / "x.jsonl", *data[2:]], "does not exist")
    assert_bad(capsys, tmp_path, ["filter", *gemma_local, "--data", inducing_jsonl], "--harmful and --harmless")
    assert_bad(capsys, tmp_path, ["audit", *gemma_local, *data, "--top", "0"], "--top")
    assert_bad(capsys, tmp_path, ["audit", *gemma_local, *data, "--weighting", "tfidf"], "weighting")
    assert_bad(capsys, tmp_path, ["audit", *gemma_local, *data, "--control", tmp_path / "c.jsonl"], "does not exist")


def test_empty_feature_set_is_one_line_and_leaves_no_result(tmp_path, capsys, gemma_local, inducing_jsonl,
                                                             harmful_jsonl):
    out = tmp_path / "same"
    args = ["filter", *gemma_local, "--data", inducing_jsonl, "--harmful", harmful_jsonl, "--harmless",
            harmful_jsonl, "--no-progress", "--out", out]
    code, _, err = rm(capsys, args)
    assert_one_line_error(code, err)
    assert "no feature is more active in harmful than in harmless" in err
    assert sorted(p.name for p in out.iterdir()) == ["activations", "config.json"]


def test_filter_with_a_disk_offload_device_map_matches_the_cpu_run(tmp_path, capsys, caplog, gemma_local,
                                                                   inducing_jsonl, harmful_jsonl, harmless_jsonl):
    """--device-map FILE.json dispatches the model with accelerate (layer 1 and the head offloaded to disk;
    safetensors weights are read in place, <cache>/offload takes the rest) and gives the same scores as a
    plain CPU load."""
    device_map = tmp_path / "map.json"
    device_map.write_text(json.dumps({"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk",
                                      "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "disk"}))
    base = ["filter", *gemma_local, "--data", inducing_jsonl, "--harmful", harmful_jsonl, "--harmless",
            harmless_jsonl, "--fraction", "0.34", "--no-progress"]
    scores = {}
    for name, extra in [("cpu", []), ("mapped", ["--device-map", device_map])]:
        code, _, err = rm(capsys, [*base, *extra, "--cache-dir", tmp_path / f"cache-{name}", "--out", tmp_path / name])
        assert code == 0, err
        scores[name] = pd.read_csv(tmp_path / name / "scores.csv")
    assert "on the meta device because they were offloaded" in caplog.text  # accelerate dispatched it
    pd.testing.assert_frame_equal(scores["mapped"], scores["cpu"], rtol=1e-5)


def test_bad_device_map_is_one_line_before_any_run_directory(tmp_path, capsys, gemma_local, inducing_jsonl,
                                                             harmful_jsonl, harmless_jsonl):
    data = ["--data", inducing_jsonl, "--harmful", harmful_jsonl, "--harmless", harmless_jsonl]
    assert_bad(capsys, tmp_path, ["filter", *gemma_local, *data, "--device-map", "everywhere"], "unknown device map")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert_bad(capsys, tmp_path, ["audit", *gemma_local, *data, "--device-map", broken], "is not valid JSON")
