"""``realmodels.data.corpus``: the python-docs corpus and text files cut into token windows."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realmodels.data.corpus import PYTHON_DOCS, TextCorpus, python_docs
from theory.errors import InputError


class CharTokenizer:
    """One token per character (ids = code points): enough to check the windowing exactly."""

    def __call__(self, text, add_special_tokens=False):
        assert add_special_tokens is False
        return {"input_ids": [ord(c) for c in text]}


def test_python_docs_is_the_standard_library_help_text():
    from pydoc_data.topics import topics

    corpus = TextCorpus.open(PYTHON_DOCS)
    assert corpus.documents == python_docs() and len(corpus.documents) == len(topics)
    assert sum(map(len, corpus.documents)) > 100_000 and "assert" in corpus.documents[python_docs().index(
        topics["assert"])]
    assert corpus.entry() == {"text": PYTHON_DOCS, "sha256": corpus.sha256}


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet="abc \n", min_size=1, max_size=400), st.integers(2, 40))
def test_windows_cover_the_text_in_order_and_mask_each_first_token(text, window):
    """Concatenated windows are the tokenised text minus at most a short tail; each window masks only its first."""
    corpus = TextCorpus("t", hashlib.sha256(text.encode()).hexdigest(), (text,))
    ids = [ord(c) for c in text]
    try:
        pieces = corpus.windows(CharTokenizer(), window)
    except InputError:
        assert len(ids) < max(2, window // 4)
        return
    joined = [t for p in pieces for t in p.input_ids.tolist()]
    assert joined == ids[:len(joined)] and len(ids) - len(joined) < max(2, window // 4)
    assert all(len(p.input_ids) <= window and not p.assistant_mask[0] and p.assistant_mask[1:].all() for p in pieces)


def test_a_text_file_is_hashed_by_its_bytes(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("hello world " * 10, encoding="utf-8")
    corpus = TextCorpus.open(path)
    assert corpus.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and corpus.source == str(path.resolve())
    with pytest.raises(InputError, match="shorter than one window"):
        TextCorpus.open(path).windows(CharTokenizer(), 1000)
