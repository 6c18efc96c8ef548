"""``realmodels features`` end to end on the embedded organism (its world's harmful data): every output, the cards
of the harmful features and of an amplification run's top movers, a rerun that changes nothing; bad input (a
feature index out of range, checked before any weights load, and the others) is one line, exit 2, nothing
written."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from realmodels.experiments.spec import ModelSpec
from tests.realmodels.cli_helpers import assert_bad, files, rm

OUTPUTS = ("cards.json", "logit_lens.csv", "top_examples.csv", "report.html", "summary.json", "config.json")


def test_features_end_to_end_on_the_organism(tmp_path, capsys, organism_world):
    out = tmp_path / "run"
    args = ["features", "--harmful", organism_world["harmful"], "--harmless", organism_world["harmless"],
            "--harmful-k", "4", "--features", "3,200", "--feature", "3", "--data", organism_world["harmful"],
            "--examples", "2", "--top-tokens", "4", "--no-progress", "--out", out]
    code, stdout, err = rm(capsys, args)
    assert code == 0, err
    assert "feature cards" in stdout and "report.html" in stdout
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    cards = json.loads((out / "cards.json").read_text())
    features = [c["feature"] for c in cards["cards"]]
    assert features[:2] == [3, 200] and len(features) == len(set(features)) <= 6  # duplicates: one card each
    summary = json.loads((out / "summary.json").read_text())
    assert summary["features"] == features and summary["lists"]["given"] == [3, 200]
    assert len(summary["lists"]["harmful"]) == 4 and summary["neuronpedia"] is None
    lens = pd.read_csv(out / "logit_lens.csv")
    assert len(lens) == len(features) * 2 * 4 and set(lens["side"]) == {"promoted", "suppressed"}
    examples = pd.read_csv(out / "top_examples.csv")
    assert set(examples["feature"]) <= set(features) and (examples["rank"] <= 2).all()
    assert examples["text"].str.contains("⟦").all() and (examples["activation"] > 0).all()
    assert all(c["neuronpedia"] is None for c in cards["cards"])  # a local SAE has no Neuronpedia page

    snapshot = files(out)
    code, stdout, _ = rm(capsys, args)
    assert code == 0 and "already finished" in stdout
    assert files(out) == snapshot


def write_amplification_run(directory, measured: np.ndarray, model_config: dict):
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps({"command": "amplification", "model": model_config}))
    pd.DataFrame({"feature": range(len(measured)), "measured": measured}).to_csv(directory / "amplification.csv",
                                                                                 index=False)
    return directory


def test_cards_for_the_top_movers_of_an_amplification_run(tmp_path, capsys, organism_world):
    measured = np.random.default_rng(0).normal(size=256) * 0.01
    measured[[17, 40, 99]] = [0.5, -0.9, 0.3]  # the three largest |measured|: 40, 17, 99
    run = write_amplification_run(tmp_path / "amplification", measured, ModelSpec().choice().to_config())
    out = tmp_path / "cards"
    code, _, err = rm(capsys, ["features", "--amplification", run, "--top-movers", "3", "--data",
                               organism_world["harmful"], "--examples", "1", "--no-progress", "--out", out])
    assert code == 0, err
    cards = json.loads((out / "cards.json").read_text())["cards"]
    assert [c["feature"] for c in cards] == [40, 17, 99]
    assert [c["sources"] for c in cards] == [[{"list": "amplification", "rank": r, "measured": m}]
                                             for r, m in ((1, -0.9), (2, 0.5), (3, 0.3))]


@pytest.fixture
def no_weights(monkeypatch):
    """Loading the model's weights fails the test: the input must be refused before."""
    import realmodels.loading.bundle as bundle

    def refuse(*args, **kwargs):
        raise AssertionError("the model weights were loaded for bad input")

    monkeypatch.setattr(bundle, "load_resolved_bundle", refuse)


@pytest.mark.parametrize(("flags", "match"), [
    (["--feature", "256"], "feature index 256 is out of range: the SAE has 256 features"),
    (["--feature", "-1"], "feature index -1 is out of range"),
    (["--features", "5,1000"], "feature index 1000 is out of range"),
    (["--features", "3,x"], "'x' is not a feature index"),
])
def test_a_bad_feature_index_is_refused_before_the_weights_load(tmp_path, capsys, organism_world, no_weights,
                                                                flags, match):
    assert_bad(capsys, tmp_path, ["features", *flags, "--data", organism_world["harmful"], "--no-progress"], match)


def test_other_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, organism_world, no_weights):
    harmful, harmless = organism_world["harmful"], organism_world["harmless"]
    assert_bad(capsys, tmp_path, ["features", "--data", harmful], "no features given")
    assert_bad(capsys, tmp_path, ["features", "--feature", "3"], "no dataset to find snippets in: pass --data")
    assert_bad(capsys, tmp_path, ["features", "--harmful", harmful], "--harmful needs --harmless")
    assert_bad(capsys, tmp_path, ["features", "--harmless", harmless, "--feature", "1"],
               "--harmless is the control of --harmful")
    assert_bad(capsys, tmp_path, ["features", "--control", harmless, "--feature", "1", "--data", harmful],
               "--control is the control of --tied")
    assert_bad(capsys, tmp_path, ["features", "--tied", harmful], "--tied needs --control")
    assert_bad(capsys, tmp_path, ["features", "--feature", "1", "--data", tmp_path / "missing.jsonl"],
               "does not exist")
    assert_bad(capsys, tmp_path, ["features", "--feature", "1", "--data", harmful, "--examples", "0"],
               "examples must be at least 1")
    assert_bad(capsys, tmp_path, ["features", "--amplification", tmp_path, "--data", harmful],
               "not a finished `realmodels amplification` run directory")
    other = write_amplification_run(tmp_path / "other", np.zeros(256), {**ModelSpec().choice().to_config(),
                                                                        "sae": "/elsewhere/sae"})
    assert_bad(capsys, tmp_path, ["features", "--amplification", other, "--data", harmful],
               "measured the features of another SAE")
    narrow = write_amplification_run(tmp_path / "narrow", np.zeros(100), ModelSpec().choice().to_config())
    assert_bad(capsys, tmp_path, ["features", "--amplification", narrow, "--data", harmful],
               "measured 100 features; this SAE has 256")


@pytest.mark.parametrize("checkpoint, layer, neuronpedia", [
    ("gemma-2-2b", 0, "gemma-2-2b/0-gemmascope-res-16k"), ("llama-3.1-8b", 1, "llama3.1-8b/1-llamascope-res-32k"),
    ("gpt-oss-20b", 3, "gpt-oss-20b/3-resid-post-aa")])
def test_registered_saes_link_their_neuronpedia_pages(tmp_path, capsys, hub_cache, checkpoint, layer, neuronpedia,
                                                      harmful_jsonl):
    """Tiny models and SAEs under the registry's hub names: the cards link Neuronpedia (the only external URLs of
    the report); gpt-oss's registry states no SAE width, so it is read from the decoder for the index check."""
    from tests.realmodels.interpret.html_structure import external_urls, parse_report

    out = tmp_path / "cards"
    args = ["features", "--checkpoint", checkpoint, "--layer", str(layer), "--features", "5,9", "--data",
            harmful_jsonl, "--examples", "1", "--ignore-memory-check", "--no-progress"]
    code, _, err = rm(capsys, [*args, "--out", out])
    assert code == 0, err
    cards = json.loads((out / "cards.json").read_text())
    assert cards["neuronpedia"] == neuronpedia
    urls = [f"https://www.neuronpedia.org/{neuronpedia}/{i}" for i in (5, 9)]
    assert [c["neuronpedia"] for c in cards["cards"]] == urls
    structure = parse_report((out / "report.html").read_text(encoding="utf-8"))
    assert [v for _, _, v in structure.urls if v.startswith("https:")] == urls and external_urls(structure) == []
    if checkpoint == "gpt-oss-20b":
        assert_bad(capsys, tmp_path, [a if a != "5,9" else "5,256" for a in args], "the SAE has 256 features")


def test_cards_for_the_features_tied_to_a_dataset(tmp_path, capsys, organism_world):
    out = tmp_path / "cards"
    code, _, err = rm(capsys, ["features", "--tied", organism_world["inducing_health"], "--harmless",
                               organism_world["harmless"], "--k", "3", "--examples", "1", "--no-progress",
                               "--out", out])
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["lists"]["tied"]) == 3 == summary["n_cards"] and summary["lists"]["harmful"] == []
    assert set(summary["datasets"]) == {"inducing_health", "harmless"}  # default --data: the selection's datasets
    tied = json.loads((out / "features" / "tied.json").read_text())
    assert tied["indices"] == summary["lists"]["tied"]
