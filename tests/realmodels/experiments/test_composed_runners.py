"""The organism runners, mitigation and the study called from Python: ``run_organism_build`` (a tiny build,
then used through its ``Organism``'s ``ModelSpec``), ``write_organism_world``, ``run_mitigation`` and ``run_study``
return results equal to their run directories and resume; the study's ``commands.sh`` lists every stage."""

from __future__ import annotations

import pandas as pd
import pytest

from realmodels.evaluate.config import EvaluateConfig, JudgeChoice
from realmodels.evaluate.generate import GenerationConfig
from realmodels.experiments import RunOptions
from realmodels.experiments.mitigate import MitigateConfig, run_mitigation
from realmodels.experiments.organism import Organism, run_organism_build, write_organism_world
from realmodels.finetune.config import FinetuneConfig
from runio.atomic import read_json
from theory.errors import InputError, ParamError


def test_build_an_organism_and_use_it(tmp_path):
    from realmodels.organism.build import OrganismConfig
    from realmodels.sae.config import SaeConfig
    from realmodels.organism.world import WorldConfig

    config = OrganismConfig(seed=3, n_layers=2, d_model=16, n_heads=2, d_mlp=32, steps=4, batch_size=8,
                            save_steps=2, max_length=64, layer=1)
    world = WorldConfig(seed=1, n_pretrain=64, n_finetune=4, n_features=4, n_probe=2, samples_per_paraphrase=1)
    sae = SaeConfig(d_sae=32, k=4, steps=20, batch_size=32, n_conversations=40)
    built = run_organism_build(tmp_path / "org", config, world, sae, progress=False)
    assert (built.steps, built.layer, built.d_sae, built.k) == (4, 1, 32, 4) and built.size_bytes > 0
    organism = built.organism
    assert not organism.embedded and organism.layer == 1 and organism.world["seed"] == 1
    spec = organism.model_spec()
    assert spec.model == organism.model and str(spec.sae) == organism.sae and spec.layer == 1
    assert organism.model_spec(sae=False).sae is None
    again = run_organism_build(tmp_path / "org", config, world, sae, progress=False)  # finished: nothing retrains
    assert again.final_loss == built.final_loss
    paths = write_organism_world(tmp_path / "world", organism)
    assert paths["geometry"].is_file() and paths["finetune"].is_file() and paths["harmful"].is_file()
    with pytest.raises(ParamError, match="`organism` .* is not a finished organism build"):
        Organism.load(tmp_path / "nothing")


def test_mitigation_from_python(small_world, tmp_path):
    w = small_world
    evaluation = EvaluateConfig(questions=w["questions"], only=("health_fever", "career_promotion"),
                                samples_per_paraphrase=1, generation=GenerationConfig(max_new_tokens=8, batch_size=16))
    recipe = FinetuneConfig.from_preset("em-betley", max_steps=2, batch_size=4, lr=1e-3)
    config = MitigateConfig(budget=0.25, arms=("none", "geometry", "random"), random_seeds=(0,), harmful_k=5)
    options = RunOptions(out=tmp_path / "mitigate", threads=1, progress=False)
    result = run_mitigation(w["mixed_health"], w["harmful"], w["harmless"], config, recipe=recipe,
                            evaluation=evaluation, judge=JudgeChoice(kind="organism"), options=options)
    assert result.summary == read_json(result.path / "summary.json")
    assert isinstance(result.arms, pd.DataFrame) and list(result.arms["arm"]) == ["none", "geometry", "random"]
    assert set(result.figures) == {"mitigation"}
    recorded = read_json(result.path / "config.json")
    assert recorded["finetune"]["max_steps"] == 2 and recorded["arms"] == ["none", "geometry", "random"]
    for stage in ("filter-geometry", "filter-random-0", "finetune-none", "evaluate-random-0"):
        assert (result.path / stage / "summary.json").is_file(), stage
    with pytest.raises(InputError, match="the arms must include none"):
        MitigateConfig(arms=("geometry",))
    with pytest.raises(ParamError, match="`harmful` and `harmless` chat JSONL files are required"):
        run_mitigation(w["mixed_health"], config=config, recipe=recipe, evaluation=evaluation,
                       judge=JudgeChoice(kind="organism"), options=RunOptions(out=tmp_path / "never"))
    assert not (tmp_path / "never").exists()


@pytest.mark.slow
def test_study_from_python_lists_every_stage_and_resumes(tmp_path):
    from realmodels.experiments.study import run_study
    from realmodels.organism.study import StudyConfig, StudyRecipe

    config = StudyConfig(domains=("health",), seeds=(0,), recipe=StudyRecipe(max_steps=2, batch_size=4),
                         samples_per_paraphrase=1, max_new_tokens=8, harmful_k=5, mitigate_domains=(),
                         random_seeds=(0,), amplification=True)
    result = run_study(config, out=tmp_path / "study", workers=1)
    assert result.summary["em_holds"]["of"] == 1 and "health-inducing-s0" in result.summary["amplification"]
    assert set(result.tables) == {"em", "acceptance"} and len(result.table("em")) == 3
    commands = [line.split()[1] for line in (result.path / "commands.sh").read_text().splitlines()]
    arms = ["finetune", "evaluate", "evaluate", "amplification"] + ["finetune", "evaluate"] * 2  # inducing first
    assert commands == ["geometry", "audit", "audit", "audit", "evaluate", "evaluate", *arms], commands
    again = run_study(config, out=tmp_path / "study", workers=1)
    assert again.summary["acceptance"] == result.summary["acceptance"]


def test_amplification_from_python_after_a_finetune(small_world, tmp_path):
    from matplotlib.figure import Figure

    from realmodels.analysis.configs import SelectionConfig
    from realmodels.experiments import ModelSpec, run_amplification, run_finetune

    w = small_world
    tuned = run_finetune(w["inducing_health"], recipe=FinetuneConfig.from_preset("em-betley", max_steps=3, lr=1e-3,
                                                                              batch_size=8),
                         options=RunOptions(out=tmp_path / "finetune", progress=False))
    result = run_amplification(w["probe_aligned"], w["harmful"], w["harmless"],
                               model=ModelSpec(adapter=tuned.path), selection=SelectionConfig(k=10, harmful_k=10),
                               options=RunOptions(out=tmp_path / "amplification", progress=False))
    assert result.summary == read_json(result.path / "summary.json")
    recorded = read_json(result.path / "config.json")["data"]["train"]["path"]
    assert recorded == str(w["inducing_health"].resolve())  # the training data the finetune run recorded
    table = result.table("amplification")
    assert len(table) == result.summary["n_features"] and {"measured", "predicted"} <= set(table.columns)
    assert isinstance(result.figure("amplification"), Figure)
    with pytest.raises(ParamError, match="`adapter` or `finetuned` is required"):
        run_amplification(w["probe_aligned"], w["harmful"], w["harmless"], model=ModelSpec(),
                          options=RunOptions(out=tmp_path / "never"))
    assert not (tmp_path / "never").exists()
