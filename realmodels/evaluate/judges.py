"""The judges behind one interface: a ``Judge`` scores ``JudgeRequest``s (one metric's filled-in judge prompt for
one answer) into ``JudgeResult``s with the fields of ``records.Judgement`` (score, label, numeric_mass, error).

    judge = make_judge("openai", model="gpt-4o-2024-08-06", cache_dir=run_dir / "judge_cache")
    judge.check()                                   # fail fast: endpoint unreachable / model not loadable
    results = judge.score(requests, on_result=append_record)   # on_result per finished request

Backends register with ``@register_judge(kind)`` in ``JUDGES`` (``openai``: any OpenAI-compatible endpoint,
``openai_judge``; ``hf``: a local transformers model, ``hf_judge``); a new judge (the model organism's exact
rule) plugs in the same way without changing callers. Both score with ``theory.judging``.

The cache (``JudgeCache``): verdicts keyed by sha256 of (judge name, scoring rule, metric, full prompt) — not the
endpoint, so the same model served elsewhere hits it — in an append-only JSONL file; errors are never cached, so
a rerun retries exactly the failed requests and sends nothing for the rest."""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from realmodels.evaluate.records import JsonlLog, verdict_problem
from theory.errors import InputError
from theory.judging import ScoreResult

CACHE_FILE = "judge_cache.jsonl"
ON_ERROR = ("continue", "stop")


@dataclass(frozen=True)
class JudgeRequest:
    """One judge call: the metric, its filled-in prompt (``Question.judge_prompt``) and the caller's item key."""

    metric: str
    prompt: str
    key: str


@dataclass(frozen=True)
class JudgeResult:
    """A verdict with ``records.Judgement``'s fields: label "score" | "no_score" | "CODE" | "REFUSAL" | "error"."""

    key: str
    metric: str
    score: float | None
    label: str
    numeric_mass: float | None = None
    error: str | None = None
    cached: bool = False

    def judgement_fields(self) -> dict:
        """``{"score", "label", "numeric_mass", "error"}`` for ``Judgement(**ids, metric=..., judge=..., **this)``."""
        return {"score": self.score, "label": self.label, "numeric_mass": self.numeric_mass, "error": self.error}

    @classmethod
    def of(cls, request: JudgeRequest, verdict: ScoreResult) -> JudgeResult:
        """The result of ``request`` from a scoring rule's verdict."""
        return cls(request.key, request.metric, verdict.score, verdict.label, verdict.numeric_mass)

    @classmethod
    def failed(cls, request: JudgeRequest, error: str) -> JudgeResult:
        """A failed request: label "error", no score, ``error`` on one line."""
        return cls(request.key, request.metric, None, "error", None, " ".join(error.split()))


OnResult = Callable[[JudgeResult], None]


@runtime_checkable
class Judge(Protocol):
    """``name`` identifies the judge model (records, cache keys); ``check`` fails fast before any work;
    ``score`` returns one result per request in request order, calling ``on_result`` as each finishes."""

    name: str

    def check(self) -> None:
        """Fail fast (an InputError) when the judge cannot be used, before any work."""

    def score(self, requests: Sequence[JudgeRequest], *, on_result: OnResult | None = None) -> list[JudgeResult]:
        """One result per request in request order, calling ``on_result`` as each finishes."""


JUDGES: dict[str, Callable[..., Judge]] = {}
BUILTIN_BACKENDS = ("realmodels.evaluate.openai_judge", "realmodels.evaluate.hf_judge",
                    "realmodels.organism.judge")  # register on import


def load_backends() -> dict[str, Callable[..., Judge]]:
    """``JUDGES`` with the built-in backends imported (they depend on this module, so it imports them by
    name, on first use, like any plugin)."""
    import importlib

    for module in BUILTIN_BACKENDS:
        importlib.import_module(module)
    return JUDGES


def register_judge(kind: str):
    """Class decorator: ``make_judge(kind, **options)`` builds ``cls(**options)``."""
    def register(factory):
        if kind in JUDGES:
            raise ValueError(f"judge kind {kind!r} registered twice")
        JUDGES[kind] = factory
        return factory
    return register


def make_judge(kind: str, **options) -> Judge:
    """The judge ``kind`` with ``options``; an unknown kind or option is an InputError listing the valid ones."""
    if kind not in load_backends():
        raise InputError(f"unknown judge {kind!r} (judges: {', '.join(sorted(JUDGES))})")
    factory = JUDGES[kind]
    parameters = inspect.signature(factory).parameters
    unknown = sorted(set(options) - set(parameters))
    if unknown:
        raise InputError(f"judge {kind!r} has no option {unknown[0]!r} (options: {', '.join(parameters)})")
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as exc:
        raise InputError(f"judge {kind!r}: {exc}") from None
    return factory(**options)


def check_on_error(on_error: str) -> str:
    """``on_error`` if it is one of ``ON_ERROR``, else an InputError."""
    if on_error not in ON_ERROR:
        raise InputError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    return on_error


def cache_key(judge: str, scoring: str, metric: str, prompt: str) -> str:
    """The cache key of a verdict: sha256 of the JSON list [judge, scoring, metric, prompt]."""
    return hashlib.sha256(json.dumps([judge, scoring, metric, prompt], ensure_ascii=False).encode()).hexdigest()


class JudgeCache:
    """Verdicts on disk (``<cache_dir>/judge_cache.jsonl``: key, judge, metric, score, label, numeric_mass —
    never a prompt's answer text, an endpoint or a key); ``cache_dir=None`` keeps nothing. The file is read when
    the cache is made (with the judge, before a run starts), so a damaged one fails before anything is written."""

    def __init__(self, cache_dir: str | Path | None, judge: str, scoring: str):
        self.judge, self.scoring = judge, scoring
        self.log = None if cache_dir is None else JsonlLog(Path(cache_dir).expanduser() / CACHE_FILE)
        self._verdicts: dict[str, dict] | None = None
        self._load()

    def _load(self) -> dict[str, dict]:
        """The cached verdicts by key; a damaged record (not JSON, NaN, ill-typed: ``verdict_problem``) is an
        InputError naming the file."""
        if self._verdicts is None:
            self._verdicts = {}
            for number, record in enumerate([] if self.log is None else self.log.read(), start=1):
                problem = verdict_problem(record)
                if problem is not None:
                    raise InputError(f"judge cache {self.log.path}: record {number} is damaged ({problem}); delete "
                                     "the file (the judge is asked again)")
                self._verdicts[record["key"]] = record
        return self._verdicts

    def key(self, request: JudgeRequest) -> str:
        """The cache key of ``request`` for this judge and scoring rule."""
        return cache_key(self.judge, self.scoring, request.metric, request.prompt)

    def get(self, request: JudgeRequest) -> JudgeResult | None:
        """The cached verdict of ``request`` (``cached=True``), or None."""
        hit = self._load().get(self.key(request))
        if hit is None:
            return None
        return JudgeResult(request.key, request.metric, hit["score"], hit["label"], hit.get("numeric_mass"),
                           cached=True)

    def put(self, request: JudgeRequest, result: JudgeResult) -> None:
        """Store ``result`` (appended to the file at once); errors and a cache without a directory store nothing."""
        if result.label == "error" or self.log is None:
            return
        record = {"key": self.key(request), "judge": self.judge, "metric": request.metric, "score": result.score,
                  "label": result.label, "numeric_mass": result.numeric_mass}
        self._load()[record["key"]] = record
        self.log.append([record])


class CachedJudge:
    """The shared ``score``: cached verdicts first, the rest through the backend's ``_score_missing`` (which
    yields (index, result) as requests finish, on the calling thread), each stored and passed on at once."""

    name: str
    cache: JudgeCache

    def check(self) -> None:
        """Nothing to check by default."""

    def _score_missing(self, requests: list[JudgeRequest]):  # -> Iterator[tuple[int, JudgeResult]]
        raise NotImplementedError

    def score(self, requests: Sequence[JudgeRequest], *, on_result: OnResult | None = None) -> list[JudgeResult]:
        """One result per request, in request order: cached verdicts first, the rest from the backend (each stored and
        passed to ``on_result`` as it finishes)."""
        results: list[JudgeResult | None] = [None] * len(requests)
        missing = []
        for index, request in enumerate(requests):
            hit = self.cache.get(request)
            if hit is None:
                missing.append(index)
                continue
            results[index] = hit
            if on_result is not None:
                on_result(hit)
        if missing:
            self.check()
            scoring = self._score_missing([requests[i] for i in missing])
            try:
                for position, result in scoring:
                    index = missing[position]
                    self.cache.put(requests[index], result)
                    results[index] = result
                    if on_result is not None:
                        on_result(result)
            finally:  # interrupted here (Ctrl-C, a failing on_result): the backend stops its requests now
                scoring.close()
        return results  # type: ignore[return-value]

