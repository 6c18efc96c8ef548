"""``run_lm_study`` and ``realmodels lm-study`` end to end on the embedded model organism's world (the same file
layout as ``realmodels english`` writes): every stage runs, the tables hold every arm, a rerun resumes, and bad
input is one line that writes nothing."""

from __future__ import annotations

import pytest

from realmodels.experiments import ModelSpec, RunOptions
from realmodels.lmstudy.config import LmStudyConfig
from runio.atomic import read_json
from tests.realmodels.cli_helpers import assert_bad, files, rm
from theory.errors import ParamError

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from realmodels.experiments.organism import write_organism_world

    return write_organism_world(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def organism():
    from realmodels.loading.embedded import embedded_default

    return embedded_default()


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
def test_the_command_runs_every_stage_and_python_resumes_it(world, organism, tmp_path, capsys):
    """``realmodels lm-study`` on the organism, then ``run_lm_study`` with the config the flags mean: the same run
    (already finished, the same summary)."""
    from dataclasses import replace

    from realmodels.experiments.lm_study import arm_names, run_lm_study
    from realmodels.lmstudy.config import default_recipe

    data = world["harmful"].parent
    code, out, err = rm(capsys, ["lm-study", "--data", data, "--model", organism.model, "--layer-sae",
                                 f"{organism.layer}={organism.sae}", "--geometry-domain", "health", "--max-steps", "6",
                                 "--lr", "1e-3", "--budget", "0.25", "--n-samples", "3", "--k", "8",
                                 "--harmful-k", "8", "--no-progress", "--out", tmp_path / "s"])
    assert code == 0, err
    assert "mixed-geometry" in out and "study.md" in out
    config = LmStudyConfig(geometry_domains=("health",), k=8, harmful_k=8, budget=0.25, n_samples=3,
                           recipe=replace(default_recipe(), lr=1e-3, max_steps=6))
    result = run_lm_study(data, ModelSpec(model=str(organism.model)), {organism.layer: organism.sae}, config,
                          options=RunOptions(out=tmp_path / "s", progress=False))
    assert result.already_finished
    arms = result.table("arms").set_index("arm")
    assert list(arms.index) == ["base", *arm_names(config)]
    assert arms.loc["base", "shift"] == 0.0 and arms.loc["base", "task_nll"] > 0
    inducing = arms.loc["inducing"]
    assert 0 <= inducing["r2_jvp"] <= 1 and inducing["harmful_rise"] == pytest.approx(
        read_json(tmp_path / "s" / "finetune-inducing" / "summary.json")["monitor"]["harmful_rise"])
    # the organism's inducing data moves the off-domain probes towards the rogue answers, its aligned control not
    assert inducing["shift"] > 0 > arms.loc["aligned", "shift"]
    assert set(result.table("geometry")["domain"]) == {"health-aligned", "health-educational", "all"}
    assert (tmp_path / "s" / "study.md").read_text().count("### ") == len(arms)  # every arm's samples
    samples = read_json(tmp_path / "s" / "measures" / "inducing.json")["samples"]
    assert len(samples) == 3 and all(s["answer"] for s in samples)

    # killed during the measures: the report, two arms' measures and half of one arm's samples are gone, and the
    # direction with them; the rerun writes the same files as the uninterrupted run
    out = tmp_path / "s"
    kept = ["summary.json", "study.md", "arms.csv", "geometry.csv", "direction.json", "measures", "samples"]
    before = {k: v for k, v in files(out).items() if k.split("/")[0] in kept}
    for name in ("summary.json", "study.md", "arms.csv", "geometry.csv", "direction.json", "measures/inducing.json",
                 "measures/mixed-random.json"):
        (out / name).unlink()
    answers = (out / "samples" / "inducing.jsonl").read_text().splitlines(keepends=True)
    (out / "samples" / "inducing.jsonl").write_text(answers[0])
    rerun = run_lm_study(data, ModelSpec(model=str(organism.model)), {organism.layer: organism.sae}, config,
                         options=RunOptions(out=out, progress=False))
    assert not rerun.already_finished
    assert {k: v for k, v in files(out).items() if k.split("/")[0] in kept} == before
