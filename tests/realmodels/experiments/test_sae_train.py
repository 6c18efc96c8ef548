"""``run_sae_train`` and ``realmodels sae train``: a TopK SAE trained with sae-lens's trainer on held-in
conversations, measured on held-out ones (FVU, L0, dead latents), saved so ``--sae`` loads it; resume; bad input
is one line and writes nothing."""

from __future__ import annotations

import math

import pytest

from realmodels.experiments import RunOptions
from realmodels.experiments.sae import run_sae_train, split
from realmodels.sae.config import SaeConfig
from runio.atomic import read_json
from tests.realmodels.cli_helpers import assert_bad, rm
from theory.errors import InputError, ParamError

TINY = SaeConfig(d_sae=32, k=4, steps=40, batch_size=64, n_conversations=60)


def test_split_holds_out_a_seeded_share_disjoint_from_training():
    train, held = split(50, 0.2, seed=3)
    assert len(held) == 10 and sorted(train + held) == list(range(50)) and not set(train) & set(held)
    assert split(50, 0.2, seed=3) == (train, held) and split(50, 0.2, seed=4) != (train, held)


def test_train_an_sae_from_python_measure_it_and_resume(small_world, tmp_path):
    from realmodels.loading.saes import saved_sae_shape

    options = RunOptions(out=tmp_path / "sae", progress=False)
    result = run_sae_train(small_world["harmful"], 1, TINY, heldout=0.25, options=options)
    assert result.summary == read_json(result.path / "summary.json") and not result.already_finished
    held = result.summary["heldout"]
    assert held["l0"] == pytest.approx(4.0) and 0 <= held["dead_fraction"] < 1 and math.isfinite(held["fvu"])
    assert held["fvu"] < 1.0  # better than predicting the held-out mean
    assert result.summary["n_heldout_conversations"] == 20 and result.summary["n_train_conversations"] == 60
    assert saved_sae_shape(result.sae) == (64, 32)
    again = run_sae_train(small_world["harmful"], 1, TINY, heldout=0.25, options=options)
    assert again.already_finished and again.summary == result.summary
    with pytest.raises(ParamError, match="`heldout` must be in"):
        run_sae_train(small_world["harmful"], 1, TINY, heldout=0.9, options=RunOptions(out=tmp_path / "never"))
    assert not (tmp_path / "never").exists()


def test_the_command_trains_an_sae_that_audit_reads(small_world, tmp_path, capsys):
    w = small_world
    code, out, err = rm(capsys, ["sae", "train", "--data", w["harmless"], "--layer", "1", "--d-sae", "32", "--k", "4",
                                 "--steps", "40", "--n-conversations", "60", "--no-progress", "--out", tmp_path / "s"])
    assert code == 0, err
    assert "heldout: FVU" in out and f"--sae {tmp_path / 's' / 'sae'} --layer 1" in out
    from realmodels.loading.embedded import embedded_default

    model = str(embedded_default().model)
    code, _, err = rm(capsys, ["audit", "--model", model, "--sae", tmp_path / "s" / "sae", "--layer", "1",
                               "--data", w["inducing_health"], "--harmful", w["harmful"], "--harmless", w["harmless"],
                               "--k", "5", "--harmful-k", "5", "--no-progress", "--out", tmp_path / "audit"])
    assert code == 0, err
    assert read_json(tmp_path / "audit" / "summary.json")["n_harmful_features"] == 5


def test_bad_input_is_one_line(small_world, tmp_path, capsys):
    args = ["sae", "train", "--data", small_world["harmful"], "--no-progress"]
    assert_bad(capsys, tmp_path, [*args, "--layer", "7"], "layer 7 is out of range")
    assert_bad(capsys, tmp_path, [*args, "--layer", "1", "--d-sae", "0"], "SAE d_sae must be an integer > 0")
    assert_bad(capsys, tmp_path, [*args, "--layer", "1", "--heldout", "0.8"], "--heldout must be in (0, 0.5]")
    assert_bad(capsys, tmp_path, [*args, "--layer", "1", "--sae", small_world["harmful"]], "No such option")


def test_a_run_killed_during_training_reruns_to_the_same_files(small_world, tmp_path):
    """What a kill during SAE training leaves (the config, a partial ``.sae.tmp``, no ``sae/``, no summary) reruns
    to the files of an uninterrupted run, byte for byte."""
    from tests.realmodels.cli_helpers import files

    whole = run_sae_train(small_world["harmful"], 1, TINY, options=RunOptions(out=tmp_path / "whole", progress=False))
    killed = tmp_path / "killed"
    run_sae_train(small_world["harmful"], 1, TINY, options=RunOptions(out=killed, progress=False))
    import shutil

    (killed / "sae").rename(killed / ".sae.tmp")  # the state of a kill before the rename
    (killed / ".sae.tmp" / "cfg.json").unlink()
    (killed / "summary.json").unlink()
    rerun = run_sae_train(small_world["harmful"], 1, TINY, options=RunOptions(out=killed, progress=False))
    assert not rerun.already_finished and not (killed / ".sae.tmp").exists()
    expected = {name: data.replace(str(whole.path).encode(), str(killed).encode())  # summary.json names its SAE
                for name, data in files(whole.path).items()}
    assert files(killed) == expected
    shutil.rmtree(tmp_path / "whole")


def test_text_and_chat_sources_train_one_sae_and_are_counted(small_world, tmp_path, capsys):
    """A text file (every token but each window's first) and a chat set train one SAE; the summary counts each
    source's units; the recorded config names both."""
    from realmodels.data.corpus import TextCorpus
    from realmodels.experiments.sae import run_sae_train

    text = tmp_path / "notes.txt"
    text.write_text(" ".join(f"note {i} says the patient is fine ." for i in range(120)), encoding="utf-8")
    from dataclasses import replace

    result = run_sae_train(small_world["harmless"], 1, replace(TINY, n_conversations=1000), text=text, window=16,
                           options=RunOptions(out=tmp_path / "mixed", progress=False))
    sources = result.summary["sources"]
    assert [s.get("text") for s in sources] == [None, str(text.resolve())]
    assert sources[0]["units"] == 80 and sources[1]["units"] >= 1 and sources[1]["tokens"] >= 16
    assert read_json(tmp_path / "mixed" / "config.json")["data"][1]["text"] == str(text.resolve())
    assert result.summary["n_train_conversations"] + result.summary["n_heldout_conversations"] == 80 + sources[1]["units"]
    code, out, err = rm(capsys, ["sae", "train", "--text", text, "--layer", "1", "--d-sae", "32", "--k", "4",
                                 "--steps", "20", "--window", "16", "--no-progress", "--out", tmp_path / "text-only"])
    assert code == 0, err
    windows = TextCorpus.open(text).windows(_organism_tokenizer(), 16)
    assert read_json(tmp_path / "text-only" / "summary.json")["sources"][0]["units"] == len(windows)


def _organism_tokenizer():
    from transformers import AutoTokenizer

    from realmodels.loading.embedded import embedded_default

    return AutoTokenizer.from_pretrained(embedded_default().model)


def test_bad_text_sources_are_one_line(small_world, tmp_path, capsys):
    args = ["sae", "train", "--layer", "1", "--no-progress"]
    assert_bad(capsys, tmp_path, args, "no training data")
    assert_bad(capsys, tmp_path, [*args, "--text", tmp_path / "missing.txt"], "is neither a corpus")
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9 " * 50)
    assert_bad(capsys, tmp_path, [*args, "--text", tmp_path / "latin1.txt"], "is not UTF-8")
    (tmp_path / "blank.txt").write_text("  \n\n", encoding="utf-8")
    assert_bad(capsys, tmp_path, [*args, "--text", tmp_path / "blank.txt"], "holds no text")


def test_a_jumprelu_sae_trains_towards_its_target_l0_and_loads_as_an_sae(small_world, tmp_path):
    """``architecture="jumprelu"`` trains sae-lens's JumpReLU SAE with the quadratic L0 penalty around k; the saved
    SAE loads like any other (``--sae``), and a TopK run's recorded config is what it was before JumpReLU."""
    from dataclasses import replace

    from sae_lens import SAE

    config = replace(TINY, architecture="jumprelu", steps=300, k=6)
    result = run_sae_train(small_world["harmful"], 1, config, options=RunOptions(out=tmp_path / "j", progress=False))
    held = result.summary["heldout"]
    assert math.isfinite(held["fvu"]) and held["fvu"] < 1.0 and abs(held["l0"] - 6) < 3, held  # near the target L0
    assert type(SAE.load_from_disk(str(result.sae), device="cpu")).__name__ == "JumpReLUSAE"
    assert read_json(tmp_path / "j" / "config.json")["sae"]["architecture"] == "jumprelu"
    assert "architecture" not in TINY.to_dict()
    with pytest.raises(InputError, match="architecture must be one of"):
        SaeConfig(architecture="gated")
