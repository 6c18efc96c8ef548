"""``run_lm_study`` and ``realmodels lm-study`` end to end on the embedded model organism's world (the same file
layout as ``realmodels english`` writes): every stage runs, the tables hold every arm, a rerun resumes, and bad
input is one line that writes nothing."""

from __future__ import annotations

import pytest

from realmodels.experiments import ModelSpec, RunOptions
from realmodels.finetune.config import FinetuneConfig
from realmodels.lmstudy.config import LmStudyConfig
from runio.atomic import read_json
from tests.realmodels.cli_helpers import assert_bad, rm
from theory.errors import ParamError

SMALL = LmStudyConfig(geometry_domains=("health",), k=10, harmful_k=10, monitor_every=3, n_samples=3,
                      max_new_tokens=8, n_probes=12, n_heldout=12,
                      recipe=FinetuneConfig.from_preset("em-betley", max_steps=6, lr=1e-3, save_steps=3))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from realmodels.experiments.organism import write_organism_world

    return write_organism_world(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def organism():
    from realmodels.loading.embedded import embedded_default

    return embedded_default()


@pytest.mark.slow
def test_the_study_runs_every_stage_and_resumes(world, organism, tmp_path):
    from realmodels.experiments.lm_study import arm_names, run_lm_study

    data = world["harmful"].parent
    options = RunOptions(out=tmp_path / "study", progress=False)
    result = run_lm_study(data, ModelSpec(model=str(organism.model)), {organism.layer: organism.sae}, SMALL,
                          options=options)
    arms = result.table("arms")
    assert list(arms["arm"]) == ["base", *arm_names(SMALL)]
    base = arms.set_index("arm").loc["base"]
    assert base["shift"] == 0.0 and base["task_nll"] > 0
    inducing = arms.set_index("arm").loc["inducing"]
    assert 0 <= inducing["r2_jvp"] <= 1 and inducing["harmful_rise"] == pytest.approx(
        read_json(tmp_path / "study" / "finetune-inducing" / "summary.json")["monitor"]["harmful_rise"])
    # the organism's inducing data moves the off-domain probes towards the rogue answers, its aligned control not
    assert inducing["shift"] > 0 > arms.set_index("arm").loc["aligned", "shift"]
    assert set(result.table("geometry")["domain"]) == {"health-aligned", "health-educational", "all"}
    assert (tmp_path / "study" / "study.md").read_text().count("### ") == len(arms)  # every arm's samples
    samples = read_json(tmp_path / "study" / "measures" / "inducing.json")["samples"]
    assert len(samples) == 3 and all(s["answer"] for s in samples)
    again = run_lm_study(data, ModelSpec(model=str(organism.model)), {organism.layer: organism.sae}, SMALL,
                         options=options)
    assert again.already_finished and again.summary == result.summary


def test_bad_input_is_one_line_and_writes_nothing(world, organism, tmp_path, capsys):
    data = world["harmful"].parent
    args = ["lm-study", "--model", organism.model, "--no-progress"]
    assert_bad(capsys, tmp_path, [*args, "--data", data, "--layer-sae", "1"], "--layer-sae must be LAYER=DIR")
    assert_bad(capsys, tmp_path, [*args, "--data", tmp_path, "--layer-sae", f"1={organism.sae}"],
               "lacks")
    assert_bad(capsys, tmp_path, [*args, "--data", data, "--layer-sae", f"9={organism.sae}"], "out of range")
    assert_bad(capsys, tmp_path, [*args, "--data", data, "--layer-sae", f"1={organism.sae}", "--guard", "wall"],
               "unknown guard")
    with pytest.raises(ParamError, match="`budget` must be in"):
        LmStudyConfig(budget=1.0)


@pytest.mark.slow
def test_the_command_runs_on_the_organism(world, organism, tmp_path, capsys):
    data = world["harmful"].parent
    code, out, err = rm(capsys, ["lm-study", "--data", data, "--model", organism.model, "--layer-sae",
                                 f"{organism.layer}={organism.sae}", "--geometry-domain", "health", "--max-steps", "4",
                                 "--lr", "1e-3", "--guard", "none", "--budget", "0.25", "--n-samples", "2",
                                 "--k", "8", "--harmful-k", "8", "--no-progress", "--out", tmp_path / "s"])
    assert code == 0, err
    assert "mixed-geometry" in out and "study.md" in out
    assert read_json(tmp_path / "s" / "config.json")["study"]["recipe"]["max_steps"] == 4
