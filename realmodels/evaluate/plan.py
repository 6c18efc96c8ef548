"""The plan of an evaluation's answers: every (question, paraphrase p, sample s < samples_per_paraphrase) in
question-file order, walked lazily (a plan of billions of items costs nothing until it is walked), each item's
seed derived from (seed, item) by a hash, and the answers already in an ``answers.jsonl`` log that belong to it."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from realmodels.evaluate.questions import Question
from realmodels.evaluate.records import Answer, JsonlLog, item_key
from theory.errors import InputError


@dataclass(frozen=True)
class PlanItem:
    """One answer to sample: ``question``'s paraphrase ``paraphrase``, sample number ``sample``."""

    question: Question
    paraphrase: int
    sample: int

    @property
    def key(self) -> str:
        """The key of this item's answer (``item_key``)."""
        return item_key(self.question.id, self.paraphrase, self.sample)

    def messages(self) -> list[dict]:
        """The chat messages of this item's paraphrase of the question."""
        return self.question.messages(self.paraphrase)

    def answer(self, text: str, finish_reason: str | None) -> Answer:
        """The ``Answer`` record of this item with the generated ``text``."""
        return Answer(question_id=self.question.id, paraphrase=self.paraphrase, sample=self.sample,
                      question=self.question.paraphrases[self.paraphrase], answer=text, finish_reason=finish_reason)


def iter_plan(questions: list[Question]) -> Iterator[PlanItem]:
    """Every (question, paraphrase, sample), in question order, then paraphrase, then sample, one at a time (a
    plan of millions of items is never held in memory)."""
    return (PlanItem(q, p, s) for q in questions for p in range(len(q.paraphrases))
            for s in range(q.samples_per_paraphrase))


def generation_plan(questions: list[Question]) -> list[PlanItem]:
    """``iter_plan`` as a list."""
    return list(iter_plan(questions))


def plan_size(questions: list[Question]) -> int:
    """The number of items of the plan."""
    return sum(len(q.paraphrases) * q.samples_per_paraphrase for q in questions)


def derived_seed(seed: int, *parts, bits: int = 63) -> int:
    """A seed in [0, 2**bits) from ``seed`` and ``parts`` (a hash: neighbouring inputs give unrelated seeds)."""
    digest = hashlib.sha256(json.dumps([seed, *parts]).encode()).digest()
    return int.from_bytes(digest[:8], "big") % (2 ** bits)


def finished_answers(log: JsonlLog, questions: list[Question]) -> dict[str, Answer]:
    """The log's answers to items of the plan of ``questions`` by key (the first of duplicates; items outside the
    plan are ignored). An answer whose question text differs from the plan's is an InputError: the log belongs to
    another question set."""
    by_id = {q.id: q for q in questions}
    done: dict[str, Answer] = {}
    for number, record in enumerate(log.read(), start=1):
        try:
            answer = Answer(**record)
        except TypeError:
            raise InputError(f"{log.path}: record {number} is not an answer; delete the file to start over") from None
        question = by_id.get(answer.question_id)
        if question is None or answer.key in done or not (
                isinstance(answer.paraphrase, int) and 0 <= answer.paraphrase < len(question.paraphrases)
                and isinstance(answer.sample, int) and 0 <= answer.sample < question.samples_per_paraphrase):
            continue
        if answer.question != question.paraphrases[answer.paraphrase]:
            raise InputError(f"{log.path} answers {answer.key} to another question text than the question set's: "
                             "use another output directory or delete the file")
        done[answer.key] = answer
    return done


def batches(items: Iterable[PlanItem], size: int) -> Iterator[list[PlanItem]]:
    """``items`` in consecutive lists of ``size`` (the last may be shorter)."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
