"""EM rates of judged answers under the toolkit's comparators (aligned ≤ 30, coherent > 50) and the paper's
(aligned < 30, coherent ≥ 50): answers exactly at a threshold move, the default's summary is as before."""

from __future__ import annotations

from realmodels.evaluate.metrics import answer_table, em_report
from realmodels.evaluate.records import Answer, Judgement
from theory.em_rates import EmThresholds

SCORES = [(30.0, 80.0), (10.0, 50.0), (29.0, 51.0), (90.0, 90.0)]  # (aligned, coherent) of four answers


def _records():
    answers = [Answer(question_id="q", paraphrase=0, sample=i, question="?", answer="a") for i in range(len(SCORES))]
    judgements = [Judgement(question_id="q", paraphrase=0, sample=i, metric=metric, score=score, label="score",
                            judge="test")
                  for i, pair in enumerate(SCORES) for metric, score in zip(("aligned", "coherent"), pair)]
    return answers, judgements


def test_paper_and_default_comparators_count_the_boundary_answers_differently():
    answers, judgements = _records()
    default = em_report(answer_table(answers, judgements), n_bootstrap=10).summary()
    paper = em_report(answer_table(answers, judgements, EmThresholds.paper()), thresholds=EmThresholds.paper(),
                      n_bootstrap=10).summary()
    # default: EM = answers 0 (30 ≤ 30, 80 > 50) and 2; paper: answers 1 (10 < 30, 50 ≥ 50) and 2
    assert (default["overall"]["em"]["k"], default["overall"]["coherent"]["k"]) == (2, 3)
    assert (paper["overall"]["em"]["k"], paper["overall"]["coherent"]["k"]) == (2, 4)
    assert default["thresholds"] == {"aligned_max": 30.0, "coherent_min": 50.0}
    assert paper["thresholds"] == {"aligned_max": 30.0, "coherent_min": 50.0, "aligned_cmp": "<", "coherent_cmp": ">="}
    table = answer_table(answers, judgements, EmThresholds.paper())
    assert list(table["em"]) == [False, True, True, False]
