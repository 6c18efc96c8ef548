"""Conversations are truncated while they are tokenised (issue 9, defect 3): a multi-megabyte message costs
memory and time bounded by ``max_length``, not by its size, and keeps exactly the tokens a whole-text
tokenisation would keep."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import realmodels.data.chat as chat
from realmodels.data.chat import tokenize_chat
from theory.errors import InputError

from tests.realmodels.tiny_models import INSECURE, QUESTIONS, build_tokenizer

ROOT = Path(__file__).resolve().parents[3]


def huge_reply(n_chars: int) -> list[dict]:
    text = (" ".join(INSECURE) + "\n") * (n_chars // 400 + 1)
    return [{"role": "user", "content": QUESTIONS[0]}, {"role": "assistant", "content": text[:n_chars]}]


@pytest.mark.parametrize("family", ["gemma2", "llama", "gptoss"])
def test_truncated_tokens_equal_the_whole_texts_first_tokens(family, monkeypatch):
    tokenizer = build_tokenizer(family)
    messages = huge_reply(300_000)
    whole = tokenize_chat(tokenizer, messages)
    encoded: list[int] = []
    real_encode = chat._encode
    monkeypatch.setattr(chat, "_encode", lambda tok, text, label: encoded.append(len(text)) or real_encode(tok, text, label))
    short = tokenize_chat(tokenizer, messages, max_length=512)
    assert short.truncated and not whole.truncated
    assert len(short.input_ids) == 512
    assert short.input_ids.tolist() == whole.input_ids[:512].tolist()
    assert short.assistant_mask.tolist() == whole.assistant_mask[:512].tolist()
    assert max(encoded) < 20_000, "tokenised far more text than 512 tokens need"


def test_no_assistant_token_left_after_truncation_names_the_conversation():
    tokenizer = build_tokenizer("llama")
    messages = [{"role": "user", "content": " ".join(QUESTIONS)}, {"role": "assistant", "content": "Yes."}]
    with pytest.raises(InputError, match=r"data\.jsonl:4: no assistant tokens within the first 32 tokens "
                                         r"\(raise `max_length` or shorten the conversation\)"):
        tokenize_chat(tokenizer, messages, label="data.jsonl:4", max_length=32)
    assert tokenize_chat(tokenizer, messages, max_length=512).assistant_mask.any()


PEAK_SCRIPT = """
import json, resource, sys
from realmodels.data.activations import dataset_activations
from realmodels.data.chat import tokenize_chat
from realmodels.data.jsonl import read_chat_jsonl
from realmodels.loading.bundle import load_bundle

model, sae, data, max_length = sys.argv[1:5]
bundle = load_bundle(model_path=model, sae_path=sae, layer=1)
dataset_activations(bundle, data.replace("huge", "small"), max_length=int(max_length), progress=False)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
acts = dataset_activations(bundle, data, max_length=int(max_length), progress=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
huge = tokenize_chat(bundle.tokenizer, read_chat_jsonl(data)[1], max_length=int(max_length))
print(json.dumps({"before_mb": before / 1024, "peak_mb": peak / 1024, "n_tokens": acts.n_tokens.tolist(),
                  "huge_tokens": len(huge.input_ids), "huge_assistant": int(huge.assistant_mask.sum())}))
"""


def test_a_multi_megabyte_message_takes_memory_bounded_by_max_length(tmp_path, tiny_gemma2_dir, tiny_sae_dir,
                                                                     write_chat_jsonl):
    """8 MB in one assistant message: before, the whole text was tokenised (~1.5 GB) and run through the model
    (millions of tokens) before truncation; now the peak grows by little more than the line itself."""
    small = [huge_reply(200), huge_reply(300)]
    write_chat_jsonl(tmp_path / "small.jsonl", small)
    data = write_chat_jsonl(tmp_path / "huge.jsonl", [small[0], huge_reply(8_000_000), small[1]])
    result = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(tiny_gemma2_dir),
                             str(tiny_sae_dir(tiny_gemma2_dir, layer=1)), str(data), "256"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["huge_tokens"] == 256  # truncated to max_length ...
    assert report["n_tokens"][1] == report["huge_assistant"] > 200  # ... with its assistant tokens kept
    assert report["peak_mb"] - report["before_mb"] < 250, report
