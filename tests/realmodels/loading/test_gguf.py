"""GGUF checkpoints (``realmodels.loading.gguf``): a tiny Llama written as llama.cpp writes GGUF converts to a plain
directory with the same tokens, chat template and logits; the conversion is cached by content; every command takes
``--model FILE.gguf`` (or a directory holding one); bad GGUF input is one line."""

from __future__ import annotations

import json

import pytest
import torch

from realmodels.loading import gguf as gguf_module
from realmodels.loading.gguf import convert_gguf, gguf_file
from tests.realmodels.cli_helpers import assert_bad, rm
from tests.realmodels.tiny_gguf import write_tiny_gguf
from theory.errors import InputError


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory, tiny_llama_dir):
    return write_tiny_gguf(tiny_llama_dir, tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf")


def test_conversion_keeps_tokens_template_and_logits_and_is_cached(tiny_gguf, tiny_llama_dir, tmp_path,
                                                                   monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = convert_gguf(tiny_gguf, tmp_path)
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    original, converted = (AutoModelForCausalLM.from_pretrained(p).eval() for p in (tiny_llama_dir, out))
    tok_a, tok_b = (AutoTokenizer.from_pretrained(p) for p in (tiny_llama_dir, out))
    text = "how should i handle my fever ? drink some water and rest"
    assert tok_a(text)["input_ids"] == tok_b(text)["input_ids"]
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert tok_a.apply_chat_template(chat, tokenize=False) == tok_b.apply_chat_template(chat, tokenize=False)
    ids = torch.tensor([tok_a(text)["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(converted(ids).logits, original(ids).logits, rtol=0, atol=1e-5)

    def no_second_read(file):
        raise AssertionError("a converted GGUF was read again")

    monkeypatch.setattr(gguf_module, "_read", no_second_read)
    assert convert_gguf(tiny_gguf, tmp_path) == out  # keyed by content: the cache answers
    assert not list(out.parent.glob(".*.tmp"))


def test_a_directory_holding_one_gguf_file_names_it(tiny_gguf, tmp_path):
    assert gguf_file(tiny_gguf) == tiny_gguf and gguf_file(tiny_gguf.parent) == tiny_gguf
    two = tmp_path / "two"
    two.mkdir()
    for name in ("a.gguf", "b.gguf"):
        (two / name).write_bytes(tiny_gguf.read_bytes())
    with pytest.raises(InputError, match="holds 2 GGUF files"):
        gguf_file(two)


def test_a_command_runs_on_a_gguf_file(tiny_gguf, tmp_path, capsys, monkeypatch, inducing_jsonl):
    monkeypatch.setenv("SUPERGEOM_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "ft"
    code, _, err = rm(capsys, ["finetune", "--model", tiny_gguf, "--data", inducing_jsonl, "--max-steps", "1",
                               "--train-batch-size", "2", "--no-progress", "--out", out])
    assert code == 0, err
    recorded = json.loads((out / "config.json").read_text())["model"]
    assert str(tmp_path / "cache" / "gguf") in json.dumps(recorded)
    assert (out / "adapter" / "adapter_config.json").is_file()


def test_bad_gguf_input_is_one_line(tiny_gguf, tiny_llama_dir, tmp_path, capsys, monkeypatch, inducing_jsonl):
    monkeypatch.setenv("SUPERGEOM_CACHE", str(tmp_path / "cache"))
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(tiny_gguf.read_bytes()[: tiny_gguf.stat().st_size // 3])
    args = ["finetune", "--data", inducing_jsonl, "--max-steps", "1", "--no-progress"]
    assert_bad(capsys, tmp_path, [*args, "--model", truncated], "is truncated or damaged")
    unsupported = write_tiny_gguf(tiny_llama_dir, tmp_path / "rwkv.gguf", architecture="rwkv6")
    assert_bad(capsys, tmp_path, [*args, "--model", unsupported], "architecture rwkv6 is not supported")
    assert not (tmp_path / "cache" / "gguf").exists() or not any((tmp_path / "cache" / "gguf").iterdir())


def test_no_progress_silences_the_conversion_bar_after_tqdm_was_imported(tiny_gguf, tmp_path, capsys, monkeypatch):
    """tqdm reads ``TQDM_DISABLE`` when it is imported (here: long before); the conversion still honours it."""
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    convert_gguf(tiny_gguf, tmp_path / "shown")
    assert "de-quantizing GGUF tensors" in capsys.readouterr().err
    monkeypatch.setenv("TQDM_DISABLE", "1")
    convert_gguf(tiny_gguf, tmp_path / "quiet")
    assert "de-quantizing" not in capsys.readouterr().err


def test_a_layer_out_of_range_of_a_gguf_model_is_one_line(tiny_gguf, tiny_llama_dir, tiny_sae_dir, tmp_path, capsys,
                                                           monkeypatch, inducing_jsonl, harmful_jsonl, harmless_jsonl):
    """``sae train`` and ``geometry`` check ``--layer`` against the layers of the model a GGUF file holds (the tiny
    Llama: 0..1): one line, exit 2, no run directory; the same ``sae train`` at layer 1 runs."""
    monkeypatch.setenv("SUPERGEOM_CACHE", str(tmp_path / "cache"))
    train = ["sae", "train", "--model", tiny_gguf, "--data", inducing_jsonl, "--d-sae", "16", "--k", "2",
             "--steps", "2", "--sae-batch-size", "8", "--no-progress"]
    assert_bad(capsys, tmp_path, [*train, "--layer", "2"], f"layer 2 is out of range: model {tiny_gguf} (")
    geometry = ["geometry", "--model", tiny_gguf, "--sae", tiny_sae_dir(tiny_llama_dir, layer=5), "--layer", "5",
                "--harmful", harmful_jsonl, "--harmless", harmless_jsonl,
                "--domain", f"code={inducing_jsonl},{harmless_jsonl}", "--no-progress"]
    assert_bad(capsys, tmp_path, geometry, f"layer 5 is out of range: model {tiny_gguf} (")  # the file given
    code, _, err = rm(capsys, [*train, "--layer", "1", "--out", tmp_path / "sae"])
    assert code == 0, err
    assert (tmp_path / "sae" / "sae" / "cfg.json").is_file()


def test_without_the_gguf_package_the_line_names_the_install(tiny_gguf, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    with pytest.raises(InputError, match="needs the gguf package: pip install gguf"):
        gguf_module._read(tiny_gguf)
