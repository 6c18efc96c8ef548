"""One evaluation run: answers (generated or resumed from ``answers.jsonl``), their judgements (resumed from
``judgements.jsonl``; only missing (answer, metric) pairs are sent to the judge, whose own disk cache makes a
rerun free), the EM metrics and figures. Every stage appends as it finishes, so a killed run loses nothing; a
judge error is reported and not recorded, so a rerun asks again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from realmodels.evaluate.judges import Judge, JudgeRequest, JudgeResult
from realmodels.evaluate.metrics import EmReport, answer_table, em_report
from realmodels.evaluate.questions import METRICS, Question
from realmodels.evaluate.records import Answer, JsonlLog, Judgement, read_answers, read_judgements
from theory.em_rates import EmThresholds

ANSWERS = "answers.jsonl"
JUDGEMENTS = "judgements.jsonl"
PER_QUESTION = "per_question.csv"
JUDGED = "judged.csv"


@dataclass
class Evaluation:
    """The outputs of one evaluation: the answers, their judgements, one table row per answer
    (``metrics.answer_table``), the ``EmReport`` and the number of failed judge requests."""
    answers: list[Answer]
    judgements: list[Judgement]
    table: pd.DataFrame
    """One row per answer (``metrics.answer_table``)."""
    report: EmReport
    n_judge_errors: int


def judge_answers(answers: list[Answer], questions: list[Question], judge: Judge, log_path: Path, *,
                  report: Callable[[str], None] = print) -> tuple[list[Judgement], int]:
    """Judgements of every (answer, metric), resumed from ``log_path``; the missing ones are sent to the judge
    and appended as they finish. Returns (judgements of these answers, number of failed requests)."""
    by_id = {q.id: q for q in questions}
    log = JsonlLog(log_path)
    done = {(j.key, j.metric): j for j in read_judgements(log_path) if j.judge == judge.name}
    answer_of = {a.key: a for a in answers}
    requests = [JudgeRequest(metric=metric, key=a.key,
                             prompt=by_id[a.question_id].judge_prompt(metric, a.question, a.answer))
                for a in answers for metric in METRICS if (a.key, metric) not in done]
    failures: list[JudgeResult] = []

    def record(result: JudgeResult) -> None:
        if result.label == "error":
            failures.append(result)
            report(f"judge error on {result.key} ({result.metric}): {result.error}")
            return
        answer = answer_of[result.key]
        judgement = Judgement(question_id=answer.question_id, paraphrase=answer.paraphrase, sample=answer.sample,
                              metric=result.metric, judge=judge.name, **result.judgement_fields())
        done[(judgement.key, judgement.metric)] = judgement
        log.append([judgement.to_dict()])

    if requests:
        judge.score(requests, on_result=record)
    ordered = [done[(a.key, metric)] for a in answers for metric in METRICS if (a.key, metric) in done]
    return ordered, len(failures)


def evaluate_pipeline(*, questions: list[Question], generate: Callable[[Path], list[Answer]], judge: Judge,
                      out: Path, thresholds: EmThresholds = EmThresholds(), n_bootstrap: int = 2000, seed: int = 0,
                      report: Callable[[str], None] = print) -> Evaluation:
    """Answers -> judgements -> metrics in the run directory ``out`` (module docstring). The records a resumed run
    holds are read and checked first, so a damaged file is one InputError before a model loads or a judge is asked."""
    out = Path(out)
    read_answers(out / ANSWERS)
    read_judgements(out / JUDGEMENTS)
    answers = generate(out / ANSWERS)
    judgements, n_errors = judge_answers(answers, questions, judge, out / JUDGEMENTS, report=report)
    table = answer_table(answers, judgements, thresholds)
    return Evaluation(answers=answers, judgements=judgements, table=table,
                      report=em_report(table, thresholds=thresholds, n_bootstrap=n_bootstrap, seed=seed),
                      n_judge_errors=n_errors)

