"""``run_evaluation`` called from Python on the embedded model organism, scored by its world's rule judge: the
result's summary is the run's summary.json, its tables are DataFrames and its figures matplotlib figures,
``save`` copies them, a second call finds the run finished; bad input is a ParamError naming the parameter with
nothing written."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from matplotlib.figure import Figure

from realmodels.evaluate.config import EvaluateConfig, JudgeChoice
from realmodels.evaluate.generate import EndpointConfig, GenerationConfig
from realmodels.experiments.evaluate import EvaluationResult, run_evaluation
from realmodels.experiments.spec import ModelSpec, RunOptions
from realmodels.organism.world import write_world
from theory.errors import ParamError

ORGANISM = JudgeChoice(kind="organism")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return write_world(tmp_path_factory.mktemp("world"), n_pretrain=5, n_finetune=2, n_features=2, n_probe=2,
                       samples_per_paraphrase=1)


def _config(world, **changes) -> EvaluateConfig:
    settings = {"questions": world["questions"], "only": ("health_fever", "code_bug"), "samples_per_paraphrase": 1,
                "generation": GenerationConfig(max_new_tokens=4, batch_size=8), "n_bootstrap": 50, **changes}
    return EvaluateConfig(**settings)


def test_run_evaluation_from_python_returns_the_run_and_resumes(tmp_path, world):
    out = tmp_path / "eval"
    lines = []
    result = run_evaluation(_config(world), judge=ORGANISM, options=RunOptions(out=out, progress=False),
                            log=lines.append)
    assert isinstance(result, EvaluationResult) and result.path == out and not result.already_finished
    assert result.summary == json.loads((out / "summary.json").read_text())
    assert result.summary["judge"] == "organism-rule" and result.summary["complete"]
    assert set(result.tables) == {"per_question", "judged"}
    assert all(isinstance(table, pd.DataFrame) for table in result.tables.values())
    assert list(result.per_question["question_id"]) == ["health_fever", "code_bug"]
    assert len(result.judged) == result.summary["n_answers"] == result.summary["n_expected_answers"]
    assert set(result.figures) == {"scores", "em_rates"}
    assert all(isinstance(figure, Figure) for figure in result.figures.values())
    config = json.loads((out / "config.json").read_text())
    assert config["command"] == "evaluate" and config["judge"] == {"kind": "organism"}
    assert config["questions"]["only"] == ["health_fever", "code_bug"]

    saved = result.save(tmp_path / "copy")
    for name in ("summary.json", "per_question.csv", "judged.csv", "scores.png", "em_rates.svg", "answers.jsonl",
                 "judgements.jsonl"):
        assert (saved / name).is_file(), name
    assert (saved / "per_question.csv").read_bytes() == (out / "per_question.csv").read_bytes()

    answers = (out / "answers.jsonl").read_bytes()
    again = run_evaluation(_config(world), judge=ORGANISM, options=RunOptions(out=out, progress=False),
                           log=lines.append)
    assert again.already_finished and again.summary == result.summary
    assert (out / "answers.jsonl").read_bytes() == answers


@pytest.mark.parametrize("call, param", [
    (lambda world, out: run_evaluation(_config(world, n_bootstrap=0), judge=ORGANISM, options=RunOptions(out=out)),
     "n_bootstrap"),
    (lambda world, out: run_evaluation(
        _config(world, generation=GenerationConfig(temperature=1e9)), judge=ORGANISM, options=RunOptions(out=out)),
     "temperature"),
    (lambda world, out: run_evaluation(_config(world), judge=JudgeChoice(kind="organism", concurrency=0),
                                       options=RunOptions(out=out)), "judge_concurrency"),
    (lambda world, out: run_evaluation(_config(world), model=ModelSpec(max_length=3), judge=ORGANISM,
                                       options=RunOptions(out=out)), "max_length"),
    (lambda world, out: run_evaluation(_config(world), judge=JudgeChoice(kind="hf", model=str(out.parent)),
                                       options=RunOptions(out=out)), "judge_model"),
    (lambda world, out: run_evaluation(_config(world), model=ModelSpec(checkpoint="gemma-2-2b"),
                                       endpoint=EndpointConfig(url="http://127.0.0.1:9/v1", model="m"),
                                       judge=ORGANISM, options=RunOptions(out=out)), "endpoint"),
    (lambda world, out: run_evaluation(_config(world), model=None, judge=ORGANISM, options=RunOptions(out=out)),
     "model"),
])
def test_bad_input_raises_a_param_error_naming_the_parameter_and_writes_nothing(tmp_path, world, call, param):
    out = tmp_path / "never"
    with pytest.raises(ParamError) as caught:
        call(world, out)
    assert param in caught.value.params, str(caught.value)
    assert not out.exists()
