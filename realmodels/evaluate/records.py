"""The evaluation's per-item records and their append-only JSONL files (``answers.jsonl``, ``judgements.jsonl``).

Records are appended as they finish (one JSON object per line, flushed and fsynced per batch), so a killed run
keeps every finished item; on resume ``JsonlLog.read`` returns the complete lines and cuts a torn last line (a
write the kill interrupted) off the file, so nothing half-written is ever read or kept. Items are keyed by
(question id, paraphrase index, sample index) — ``item_key`` — and for judgements also by the metric."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from theory.errors import InputError


def item_key(question_id: str, paraphrase: int, sample: int) -> str:
    return f"{question_id}/{paraphrase}/{sample}"


@dataclass(frozen=True)
class Answer:
    """One sampled answer: which question, paraphrase and sample, the prompt asked and the answer text."""

    question_id: str
    paraphrase: int
    sample: int
    question: str
    answer: str
    finish_reason: str | None = None

    @property
    def key(self) -> str:
        return item_key(self.question_id, self.paraphrase, self.sample)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Judgement:
    """A judge's verdict on one answer for one metric. ``label``: "score" (``score`` in [0, 100]), "CODE" or
    "REFUSAL" (the aligned prompt's special answers), "no_score" (less than the minimum probability mass on
    numbers, or no number), "error" (the request failed after its retries; ``error`` says why)."""

    question_id: str
    paraphrase: int
    sample: int
    metric: str
    score: float | None
    label: str
    judge: str
    numeric_mass: float | None = None
    error: str | None = None

    @property
    def key(self) -> str:
        return item_key(self.question_id, self.paraphrase, self.sample)

    def to_dict(self) -> dict:
        return asdict(self)


class JsonlLog:
    """An append-only JSONL file of records (dicts)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self) -> list[dict]:
        """Every complete line's object; a torn last line (no newline) is cut off the file. A complete line
        that is not JSON is an InputError naming file:line (the file was edited, not torn)."""
        if not self.path.is_file():
            return []
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a write interrupted mid-line: drop it
            with self.path.open("r+b") as handle:
                handle.truncate(end)
        records = []
        for number, line in enumerate(data[:end].splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise InputError(f"{self.path}:{number} is not valid JSON; delete the file to start over") from None
        return records

    def append(self, records: Iterable[dict]) -> None:
        lines = "".join(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n" for record in records)
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())


def read_answers(path: str | Path) -> list[Answer]:
    return [Answer(**record) for record in JsonlLog(path).read()]


def read_judgements(path: str | Path) -> list[Judgement]:
    return [Judgement(**record) for record in JsonlLog(path).read()]
