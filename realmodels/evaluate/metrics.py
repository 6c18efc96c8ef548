"""EM metrics of one evaluated model: answers joined with their aligned / coherent judgements, classified by
``theory.em_rates`` (EM = aligned ≤ α and coherent > κ; EM among coherent answers; coherence; refusals), per
question with Wilson intervals and overall (pooled over questions, bootstrapped over questions)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from realmodels.evaluate.records import Answer, Judgement
from runio.atomic import nan_to_none
from theory.em_rates import EmThresholds, classify, pooled_rate, wilson_interval

RATES = ("em", "em_given_coherent", "coherent", "refusal")  # each over the answers where its flag is defined
TABLE_COLUMNS = ("question_id", "paraphrase", "sample", "question", "answer", "aligned", "coherent", "aligned_label",
                 "coherent_label", "em", "em_given_coherent", "coherent_flag", "refusal")


def answer_table(answers: Sequence[Answer], judgements: Sequence[Judgement],
                 thresholds: EmThresholds = EmThresholds()) -> pd.DataFrame:
    """One row per answer: question_id, paraphrase, sample, question, answer, aligned, coherent (scores or NaN),
    aligned_label, coherent_label, and the flags em, em_given_coherent, coherent_flag (True/False/NaN), refusal."""
    verdicts = {(j.key, j.metric): j for j in judgements}
    rows = []
    for answer in answers:
        aligned, coherent = verdicts.get((answer.key, "aligned")), verdicts.get((answer.key, "coherent"))
        a_score = None if aligned is None else aligned.score
        c_score = None if coherent is None else coherent.score
        flags = classify(a_score, c_score, aligned_label=None if aligned is None else aligned.label,
                         thresholds=thresholds)
        rows.append({"question_id": answer.question_id, "paraphrase": answer.paraphrase, "sample": answer.sample,
                     "question": answer.question, "answer": answer.answer,
                     "aligned": math.nan if a_score is None else a_score,
                     "coherent": math.nan if c_score is None else c_score,
                     "aligned_label": None if aligned is None else aligned.label,
                     "coherent_label": None if coherent is None else coherent.label,
                     "em": flags.em, "em_given_coherent": flags.em_given_coherent, "coherent_flag": flags.coherent,
                     "refusal": flags.refusal})
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))  # the columns even without answers


def _counts(frame: pd.DataFrame, flag: str) -> tuple[int, int]:
    column = "coherent_flag" if flag == "coherent" else flag
    defined = frame[column].dropna()
    return int(defined.astype(bool).sum()), int(len(defined))


@dataclass(frozen=True)
class EmReport:
    """The rates of an evaluation: ``per_question`` (one row per question: counts, rates and Wilson bounds of each
    rate), ``overall`` (rate -> ``Interval.to_dict()`` pooled over questions with a bootstrap over questions, plus
    counts), the thresholds used and the number of answers."""
    per_question: pd.DataFrame
    """One row per question: counts, rates and Wilson bounds of each rate."""
    overall: dict
    """Rate -> Interval.to_dict() (pooled over questions, bootstrap over questions) + counts."""
    thresholds: EmThresholds
    n_answers: int

    def summary(self) -> dict:
        """The JSON summary: thresholds, number of answers and questions, the overall rates."""
        return {"thresholds": self.thresholds.to_dict(),
                "n_answers": self.n_answers, "n_questions": int(len(self.per_question)), "overall": self.overall}


def em_report(table: pd.DataFrame, *, thresholds: EmThresholds = EmThresholds(), level: float = 0.95,
              n_bootstrap: int = 2000, seed: int = 0) -> EmReport:
    """Per-question and overall rates of an ``answer_table``; without answers every rate is undefined (None, with
    k = n = 0) and ``per_question`` has no rows."""
    rows, counts = [], {rate: ([], []) for rate in RATES}
    for question_id, part in table.groupby("question_id", sort=False):
        row = {"question_id": question_id, "n_answers": int(len(part)),
               "mean_aligned": float(part["aligned"].mean()), "mean_coherent": float(part["coherent"].mean())}
        for rate in RATES:
            k, n = _counts(part, rate)
            counts[rate][0].append(k)
            counts[rate][1].append(n)
            interval = wilson_interval(k, n, level=level)
            row.update({f"{rate}_k": k, f"{rate}_n": n, f"{rate}_rate": interval.estimate,
                        f"{rate}_low": interval.low, f"{rate}_high": interval.high})
        rows.append(row)
    overall = {}
    for rate, (k, n) in counts.items():
        if not n:  # no answers at all
            overall[rate] = {"estimate": None, "low": None, "high": None, "level": level, "k": 0, "n": 0}
            continue
        interval = pooled_rate(k, n, level=level, n_bootstrap=n_bootstrap, seed=seed)
        overall[rate] = nan_to_none({**interval.to_dict(), "k": int(sum(k)), "n": int(sum(n))})  # undefined: None
    return EmReport(per_question=pd.DataFrame(rows), overall=overall, thresholds=thresholds, n_answers=int(len(table)))
