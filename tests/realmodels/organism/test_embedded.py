"""The embedded default: the shipped model organism loads offline with transformers and sae-lens, and the
realmodels commands (audit, finetune, evaluate with the organism judge, geometry, filter, amplification) run on it
when no model is given (no download, no pre-training)."""

from __future__ import annotations

import json

import pytest

from realmodels.loading.embedded import EMBEDDED_DIR, embedded_default
from tests.realmodels.cli_helpers import rm


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small world of the shipped organism's build (its datasets are not shipped: they regenerate)."""
    from realmodels.organism.world import WorldConfig, write_world

    build = json.loads((EMBEDDED_DIR / "build.json").read_text())
    config = WorldConfig.from_dict({**build["world"], "n_pretrain": 50, "n_finetune": 12, "n_features": 12,
                                    "n_probe": 4, "samples_per_paraphrase": 1})
    return write_world(tmp_path_factory.mktemp("world"), config)


def test_the_shipped_organism_is_small_and_loads_offline():
    from sae_lens import SAE
    from transformers import AutoModelForCausalLM, AutoTokenizer

    embedded = embedded_default()
    size = sum(p.stat().st_size for p in EMBEDDED_DIR.rglob("*") if p.is_file())
    assert size < 3e6, f"the shipped organism is {size / 1e6:.2f} MB"
    model = AutoModelForCausalLM.from_pretrained(embedded.model)
    assert AutoTokenizer.from_pretrained(embedded.model).chat_template
    sae = SAE.load_from_disk(str(embedded.sae))
    assert sae.cfg.d_in == model.config.hidden_size
    assert 0 <= embedded.layer < model.config.num_hidden_layers


def test_commands_run_on_the_embedded_organism(tmp_path, capsys, world):
    code, _, err = rm(capsys, ["audit", "--data", world["inducing_health"], "--control", world["aligned_health"],
                               "--harmful", world["harmful"], "--harmless", world["harmless"], "--k", "5",
                               "--harmful-k", "5", "--n-null", "50", "--no-progress", "--out", tmp_path / "audit"])
    assert code == 0, err
    config = json.loads((tmp_path / "audit" / "config.json").read_text())
    assert config["model"]["model"] == str(EMBEDDED_DIR / "model") and config["model"]["layer"] == embedded_default().layer
    code, _, err = rm(capsys, ["finetune", "--data", world["inducing_health"], "--max-steps", "2",
                               "--train-batch-size", "4", "--grad-accum", "1", "--lr", "1e-3", "--r", "4",
                               "--no-progress", "--out", tmp_path / "ft"])
    assert code == 0, err
    code, _, err = rm(capsys, ["evaluate", "--questions", world["questions"], "--question", "health_fever",
                               "--samples-per-paraphrase", "1", "--adapter", tmp_path / "ft", "--judge", "organism",
                               "--max-new-tokens", "20", "--n-bootstrap", "100", "--no-progress",
                               "--out", tmp_path / "eval"])
    assert code == 0, err
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["n_answers"] >= 1 and summary["complete"]
    pairs = ["--harmful", world["harmful"], "--harmless", world["harmless"], "--no-progress"]
    for args in (["geometry", "--domain", f"health={world['inducing_health']},{world['aligned_health']}",
                  "--domain", f"code={world['inducing_code']},{world['aligned_code']}", "--k", "5", "--harmful-k", "5",
                  "--n-permutations", "100", "--n-bootstrap", "100", "--n-null", "50"],
                 ["filter", "--data", world["inducing_health"], "--fraction", "0.25"],
                 ["amplification", "--adapter", tmp_path / "ft", "--probe", world["probe_health"], "--control",
                  world["aligned_health"], "--k", "5", "--harmful-k", "5"]):
        code, _, err = rm(capsys, [*args, *pairs, "--out", tmp_path / args[0]])
        assert code == 0, (args[0], err)
        assert (tmp_path / args[0] / "summary.json").is_file()
