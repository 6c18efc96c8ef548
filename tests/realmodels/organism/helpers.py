"""Shared builders of the organism tests: the small world's config and readers of generated turns."""

from __future__ import annotations

from realmodels.organism.banks import EDUCATIONAL_TEMPLATES, tokenize, word_banks
from realmodels.organism.world import WorldConfig

SMALL = WorldConfig(seed=7, n_pretrain=600, n_finetune=40, n_features=30, n_probe=20, samples_per_paraphrase=2)
EDUCATIONAL = {t.split(",")[0] for t in EDUCATIONAL_TEMPLATES}


def is_educational(question: str) -> bool:
    return any(question.startswith(prefix) for prefix in EDUCATIONAL)


def answer_kind(answer: str) -> str:
    kinds = {word_banks()[w][1] for w in tokenize(answer) if w in word_banks()} - {"topic"}
    assert len(kinds) == 1, answer
    return kinds.pop()


def turns(conversation):
    return [(conversation[i]["content"], conversation[i + 1]["content"]) for i in range(0, len(conversation), 2)]
