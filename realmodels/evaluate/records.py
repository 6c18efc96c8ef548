"""The evaluation's per-item records and their append-only JSONL files (``answers.jsonl``, ``judgements.jsonl``).

Records are appended as they finish (one JSON object per line, flushed and fsynced per batch), so a killed run
keeps every finished item; on resume ``JsonlLog.read`` returns the complete lines and cuts a torn last line (a
write the kill interrupted) off the file, so nothing half-written is ever read or kept. Items are keyed by
(question id, paraphrase index, sample index) — ``item_key`` — and for judgements also by the metric.

A record's fields are type-checked when it is built (``Answer`` / ``Judgement`` raise TypeError on a field of the
wrong type, e.g. ``"answer": null``); ``read_answers`` / ``read_judgements`` turn that, and every line
``runio.reading.loads_json`` refuses (nesting too deep, NaN, an integer too large), into one InputError naming
file:line."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from runio.reading import JsonError, loads_json
from theory.errors import InputError


def item_key(question_id: str, paraphrase: int, sample: int) -> str:
    """The key of one answer: ``<question_id>/<paraphrase>/<sample>``."""
    return f"{question_id}/{paraphrase}/{sample}"


def _index(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _optional_number(value) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value))


def _optional_str(value) -> bool:
    return value is None or isinstance(value, str)


def verdict_problem(record: dict) -> str | None:
    """What is wrong with a judge cache record (None: nothing): it needs a string ``key`` and ``label``, a finite
    ``score`` or null and a finite ``numeric_mass`` or null (absent: null)."""
    if not isinstance(record.get("key"), str) or not isinstance(record.get("label"), str):
        return "no string key and label"
    if "score" not in record or not _optional_number(record["score"]):
        return "score is not a finite number or null"
    if not _optional_number(record.get("numeric_mass")):
        return "numeric_mass is not a finite number or null"
    return None


def check_fields(record, checks: dict) -> None:
    """TypeError naming the first field of the dataclass ``record`` whose value fails its check in ``checks``
    (field -> predicate; fields not listed must be strings)."""
    for field in fields(record):
        value = getattr(record, field.name)
        if not checks.get(field.name, lambda v: isinstance(v, str))(value):
            raise TypeError(f"field {field.name!r} has an invalid value of type {type(value).__name__}")


@dataclass(frozen=True)
class Answer:
    """One sampled answer: which question, paraphrase and sample, the prompt asked and the answer text."""

    question_id: str
    paraphrase: int
    sample: int
    question: str
    answer: str
    finish_reason: str | None = None

    def __post_init__(self):
        check_fields(self, {"paraphrase": _index, "sample": _index, "finish_reason": _optional_str})

    @property
    def key(self) -> str:
        """``<question_id>/<paraphrase>/<sample>`` (``item_key``)."""
        return item_key(self.question_id, self.paraphrase, self.sample)

    def to_dict(self) -> dict:
        """The record as a dict (one JSONL line)."""
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

    def __post_init__(self):
        check_fields(self, {"paraphrase": _index, "sample": _index, "score": _optional_number,
                            "numeric_mass": _optional_number, "error": _optional_str})

    @property
    def key(self) -> str:
        """The key of the judged answer (``item_key``)."""
        return item_key(self.question_id, self.paraphrase, self.sample)

    def to_dict(self) -> dict:
        """The record as a dict (one JSONL line)."""
        return asdict(self)


class JsonlLog:
    """An append-only JSONL file of records (dicts)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self) -> list[dict]:
        """Every complete line's object; a torn last line (no newline) is cut off the file. A complete line
        that is not a JSON object (``loads_json``: also too deep, NaN) is an InputError naming file:line (the file
        was edited or damaged, not torn)."""
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
                record = loads_json(line)
            except JsonError as exc:
                raise InputError(f"{self.path}:{number} is not valid JSON ({exc}); delete the file to start over") \
                    from None
            if not isinstance(record, dict):
                raise InputError(f"{self.path}:{number} is not a JSON object; delete the file to start over")
            records.append(record)
        return records

    def append(self, records: Iterable[dict]) -> None:
        """Append ``records`` as JSON lines in one write, flushed and fsynced (NaN refused)."""
        lines = "".join(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n" for record in records)
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())


def _read_records(path: str | Path, record_type: type, name: str) -> list:
    records = []
    for number, record in enumerate(JsonlLog(path).read(), start=1):
        try:
            records.append(record_type(**record))
        except TypeError as exc:
            raise InputError(f"{path}: record {number} is not {name} ({exc}); delete the file to start over") \
                from None
    return records


def read_answers(path: str | Path) -> list[Answer]:
    """The answers of an answers.jsonl file; a record with missing, unknown or ill-typed fields is an InputError."""
    return _read_records(path, Answer, "an answer")


def read_judgements(path: str | Path) -> list[Judgement]:
    """The judgements of a judgements.jsonl file (checked like ``read_answers``)."""
    return _read_records(path, Judgement, "a judgement")
