"""``realmodels.data.dataset``: a dataset opened in one read equals what the line readers and the hash give, a
run's registry opens each file once, and tokenisation is made once per (tokenizer, max_length)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realmodels.data.dataset import Dataset, Datasets
from realmodels.data.jsonl import dataset_hash, read_chat_jsonl, read_jsonl_lines
from theory.errors import InputError, ParamError

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
CONVERSATION = st.tuples(TEXT, TEXT).map(lambda qa: {"messages": [{"role": "user", "content": qa[0]},
                                                                  {"role": "assistant", "content": qa[1]}]})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conversations=st.lists(CONVERSATION, min_size=1, max_size=5), ending=st.sampled_from(["\n", "\r\n"]),
       blank=st.booleans(), bom=st.booleans(), final=st.booleans())
def test_one_read_equals_the_line_readers_and_the_hash(tmp_path, conversations, ending, blank, bom, final):
    lines = [json.dumps(c, ensure_ascii=False) for c in conversations]
    text = ending.join(lines + ([""] if blank else []) + ([""] if final else []))
    path = tmp_path / "data.jsonl"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    dataset = Dataset.open(path)
    assert list(dataset.lines) == read_jsonl_lines(path)
    assert list(dataset.conversations) == read_chat_jsonl(path)
    assert dataset.sha256 == dataset_hash(path) and dataset.entry() == {"path": str(path.resolve()),
                                                                        "sha256": dataset_hash(path)}


def test_errors_name_the_role_and_the_line(tmp_path):
    with pytest.raises(ParamError, match=r"^`data` dataset .*missing.jsonl does not exist") as caught:
        Dataset.open(tmp_path / "missing.jsonl", "`data`")
    assert caught.value.renamed(lambda p: "--" + p).startswith("--data dataset")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n{\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: not valid JSON"):
        Dataset.open(bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(InputError, match="holds no conversations"):
        Dataset.open(empty)


def test_a_runs_registry_opens_each_file_once(tmp_path, monkeypatch):
    path = tmp_path / "data.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n')
    opened = []
    original = Dataset.open.__func__
    monkeypatch.setattr(Dataset, "open", classmethod(lambda cls, p, role="chat": opened.append(p) or
                                                      original(cls, p, role)))
    datasets = Datasets()
    first = datasets.open(path, "`data`")
    assert datasets.open(tmp_path / "." / "data.jsonl", "`control`") is first and len(opened) == 1
    other = Dataset.open(path)
    assert datasets.open(other) is first  # a dataset object for a file already opened: the run's one


def test_tokenised_once_per_tokenizer_and_length(tmp_path, monkeypatch):
    import realmodels.data.chat as chat

    path = tmp_path / "data.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n')
    calls, token = [], SimpleNamespace(truncated=False)
    monkeypatch.setattr(chat, "tokenize_chats", lambda tokenizer, conversations, **kw: calls.append(kw) or [token])
    dataset, tokenizer = Dataset.open(path), object()
    assert dataset.tokenized(tokenizer, 8) == dataset.tokenized(tokenizer, 8) == [token] and len(calls) == 1
    dataset.tokenized(tokenizer, 16)
    dataset.tokenized(object(), 8)
    assert len(calls) == 3
