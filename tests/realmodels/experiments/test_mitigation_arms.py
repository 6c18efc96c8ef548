"""The benchmark's new arms on constructed cases: persona screening removes the responses furthest along the trait
direction (the organism's misalignment direction: its harmful answers), interleave adds exactly the budget's count
of aligned conversations, each training arm's defence reaches run_finetune, the budget curve's runs and the task
loss / retention columns."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from realmodels.analysis.direction import Direction, save_direction
from realmodels.experiments.mitigate import MitigateConfig
from realmodels.experiments.screening import interleave, persona_filter, persona_scores
from theory.errors import InputError, ParamError


def _chat(user: str, answer: str) -> str:
    return json.dumps({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]})


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_persona_filter_removes_the_top_scores_and_keeps_the_order(tmp_path):
    data = _write(tmp_path / "d.jsonl", [_chat(f"q{i}", f"a{i}") for i in range(8)])
    scores = np.array([0.1, 5.0, -1.0, 3.0, 0.0, 4.0, 2.0, -2.0])
    kept = persona_filter(data, scores, 0.25, tmp_path / "f")  # round(0.25 * 8) = 2: samples 1 and 5
    assert [json.loads(x)["messages"][0]["content"] for x in kept.read_text().splitlines()] == \
        [f"q{i}" for i in (0, 2, 3, 4, 6, 7)]
    removed = (tmp_path / "f" / "removed.jsonl").read_text().splitlines()
    assert [json.loads(x)["messages"][0]["content"] for x in removed] == ["q1", "q5"]
    assert json.loads((tmp_path / "f" / "summary.json").read_text())["n_removed"] == 2


def test_persona_scores_rank_the_harmful_answers_furthest_along_the_misalignment_direction(tmp_path):
    """On the embedded organism: six inducing (harmful) and six aligned answers of one domain; with û the organism's
    misalignment direction (rogue − aligned probes), budget 1/2 removes exactly the six harmful ones."""
    import torch

    from realmodels.experiments.organism import Organism, write_organism_world
    from realmodels.experiments.spec import ModelSpec, RunOptions

    organism = Organism.load()
    world = tmp_path / "world"
    write_organism_world(world, organism)
    harmful = (world / "inducing_health.jsonl").read_text().splitlines()[:6]
    aligned = (world / "aligned_health.jsonl").read_text().splitlines()[:6]
    data = _write(tmp_path / "mixed.jsonl", [x for pair in zip(harmful, aligned) for x in pair])
    session = RunOptions(cache_dir=tmp_path / "acts", progress=False).session(ModelSpec(), tmp_path)
    u = (session.activations(world / "probe_rogue.jsonl").residual_mean.mean(0)
         - session.activations(world / "probe_aligned.jsonl").residual_mean.mean(0))
    save_direction(tmp_path / "u.json", Direction(layer=organism.layer, vector=u.tolist()))
    scores = persona_scores(data, tmp_path / "u.json", ModelSpec(), tmp_path / "persona", max_new_tokens=24)
    assert scores.shape == (12,) and np.isfinite(scores).all()
    persona_filter(data, scores, 0.5, tmp_path / "f")
    assert set((tmp_path / "f" / "removed.jsonl").read_text().splitlines()) == set(harmful)
    # cached: a second call reads scores.csv
    assert np.array_equal(persona_scores(data, tmp_path / "u.json", ModelSpec(), tmp_path / "persona"), scores)
    assert torch.is_tensor(u)


def test_persona_screening_refuses_multi_turn_conversations(tmp_path):
    two = json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                                   {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]})
    data = _write(tmp_path / "d.jsonl", [two])
    from realmodels.experiments.screening import one_turn_prompts

    with pytest.raises(InputError, match="one-turn"):
        one_turn_prompts(data)


@pytest.mark.parametrize("budget, n, added", [(0.1, 30, 3), (0.25, 10, 2), (0.5, 7, 4)])
def test_interleave_adds_exactly_the_budgets_count_of_aligned_conversations(tmp_path, budget, n, added):
    data = _write(tmp_path / "d.jsonl", [_chat(f"q{i}", "harm") for i in range(n)])
    aligned = _write(tmp_path / "a.jsonl", [_chat(f"p{i}", "fine") for i in range(n)])
    train = interleave(data, aligned, budget, tmp_path / "i").read_text().splitlines()
    assert train[:n] == data.read_text().splitlines()
    assert train[n:] == aligned.read_text().splitlines()[:added]


def test_interleave_with_too_few_aligned_conversations_is_an_input_error(tmp_path):
    data = _write(tmp_path / "d.jsonl", [_chat(f"q{i}", "x") for i in range(10)])
    aligned = _write(tmp_path / "a.jsonl", [_chat("p", "y")])
    with pytest.raises(InputError, match="needs 5"):
        interleave(data, aligned, 0.5, tmp_path / "i")
    assert not (tmp_path / "i").exists()


@pytest.mark.parametrize("arm, field, expected", [
    ("caft", "defence", {"caft": "direction", "steer_alpha": 0.0, "kl_weight": 0.0}),
    ("steer", "defence", {"caft": "none", "steer_alpha": 2.5, "kl_weight": 0.0}),
    ("kl", "defence", {"caft": "none", "steer_alpha": 0.0, "kl_weight": 0.3}),
    ("guard", "guard", {"kind": "rise", "weight": 0.7, "harmful_k": 5}),
])
def test_each_training_arm_reaches_run_finetune_with_its_defence_on_the_full_set(tmp_path, monkeypatch, arm, field,
                                                                                   expected):
    """run_arm of a training arm fine-tunes the untouched training set with the arm's defence (run_finetune is
    replaced by a recorder that stops the arm there)."""
    import realmodels.experiments.finetune as finetune
    from realmodels.analysis.configs import FilterConfig, SelectionConfig
    from realmodels.evaluate.config import EvaluateConfig, JudgeChoice
    from realmodels.experiments.arms import ArmJob, run_arm
    from realmodels.experiments.spec import ModelSpec, RunOptions
    from realmodels.finetune.config import FinetuneConfig

    seen = {}

    class Stop(Exception):
        pass

    def recorder(data, **kwargs):
        seen.update(kwargs, data=data)
        raise Stop

    monkeypatch.setattr(finetune, "run_finetune", recorder)
    config = MitigateConfig(arms=("none", arm), harmful_k=5, guard_weight=0.7, kl_weight=0.3, steer_alpha=2.5)
    direction = tmp_path / "u.json"
    data = _write(tmp_path / "d.jsonl", [_chat("q", "a")])
    job = ArmJob(arm=arm, name=arm, seed=None, index=1, total=1, run_path=tmp_path, data=data,
                 harmful=tmp_path / "h.jsonl", harmless=tmp_path / "hl.jsonl", model=ModelSpec(), options=RunOptions(),
                 filt=FilterConfig(fraction=0.1), selection=SelectionConfig(), judge=JudgeChoice(kind="organism"),
                 budget=0.1, recipe=FinetuneConfig(), evaluation=EvaluateConfig(), **config.training(arm, direction))
    with pytest.raises(Stop):
        run_arm(job)
    assert seen["data"] == data
    got = seen[field]
    assert {key: getattr(got, key) for key in expected} == expected
    if arm in ("caft", "steer"):
        assert got.direction == direction
    if arm == "guard":
        assert (seen["harmful"], seen["harmless"]) == (tmp_path / "h.jsonl", tmp_path / "hl.jsonl")
    assert seen["options"].out == tmp_path / f"finetune-{arm}"


def test_the_budget_curve_runs_every_data_arm_at_every_budget_and_the_rest_once():
    config = MitigateConfig(budget=0.25, budgets=(0.1, 0.5), arms=("none", "random", "persona", "kl"),
                            random_seeds=(3,))
    runs = [(arm, name, budget) for arm, name, _, budget in config.runs()]
    assert runs == [("none", "none", 0.25), ("random", "random-3", 0.25), ("persona", "persona", 0.25),
                    ("kl", "kl", 0.25), ("random", "random-3-b0.1", 0.1), ("persona", "persona-b0.1", 0.1),
                    ("random", "random-3-b0.5", 0.5), ("persona", "persona-b0.5", 0.5)]
    with pytest.raises(ParamError, match="differ from the main budget"):
        replace(config, budgets=(0.25,))
    with pytest.raises(ParamError, match="in \\(0, 1\\)"):
        replace(config, budgets=(1.5,))


def test_with_retention_reports_each_arms_task_loss_and_retention():
    from realmodels.experiments.mitigate import with_retention

    table = pd.DataFrame({"arm": ["none", "persona", "random"]})
    results = {"none": {"task_nll": 1.0, "base_task_nll": 2.0}, "persona": {"task_nll": 1.5},
               "random-0": {"task_nll": 1.0}, "random-1": {"task_nll": 2.0}}
    got = with_retention(table, results, [("none", "none"), ("persona", "persona"), ("random", "random-0"),
                                          ("random", "random-1")])
    assert list(got["task_nll"]) == [1.0, 1.5, 1.5]
    assert list(got["task_retention"]) == pytest.approx([1.0, 0.5, 0.5])
