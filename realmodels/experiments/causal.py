"""``run_causal``: causal tests of the organism's harmful SAE features and misalignment directions by steering,
clamping and ablation while answering (``realmodels.organism.causal`` holds the config, the conditions and the
tables). Each evaluation is ``run_evaluation`` in its own run directory, each fine-tune ``run_finetune``, so a rerun
into the same ``out`` skips whatever is finished (a complete evaluation is not reopened; an incomplete one resumes
down to single answers); every stage's equivalent ``realmodels`` command line is appended to ``commands.sh``
(``realmodels.experiments.study.stage``).

Layout of ``out``:
- ``world/`` (and ``data-s<seed>/``): the organism's world and the fine-tuning sets of the other seeds;
- ``directions/``: ``harmful.json`` (the normalised mean of the harmful features' unit decoder directions, at the
  SAE layer), ``u<L>.json`` (the misalignment direction at layer L:
  ``realmodels.analysis.direction.probe_directions`` on ``probe_rogue`` / ``probe_aligned``), ``summary.json`` (the
  harmful features, each layer's median residual norm on the questions' prompts, ‖u_L‖ and the α it gives,
  cos(û_SAE-layer, v̂));
- ``finetune-s<seed>/``: the inducing fine-tune (the study's recipe, ``finetune.toml``);
- ``evaluations/<model>-<condition>-s<seed>/``: one evaluation each (the world's questions, the exact judge);
- ``rates.csv`` (one row per evaluation), ``conditions.csv`` (per condition: mean over seeds with its t interval,
  paired difference vs plain), ``causal.png/.svg``, ``causal.md``, ``summary.json``.

Example (a small run on the embedded organism)::

    from realmodels.experiments.causal import run_causal
    from realmodels.organism.causal import CausalConfig
    from realmodels.organism.study import StudyRecipe

    result = run_causal(CausalConfig(seeds=(0,), recipe=StudyRecipe(max_steps=20), samples_per_paraphrase=1),
                        out="runs/causal")
    result.table("conditions")
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from realmodels.experiments.organism import Organism, recipe_toml
from realmodels.experiments.result import RunResult
from realmodels.experiments.run import Log
from realmodels.experiments.study import (data_dir, evaluate_args, evaluation, model_args, open_organism_run,
                                          organism_session, stage, stage_options, study_recipe)
from realmodels.organism.causal import (BASE, HARMFUL_UP, HARMFUL_ZERO, PLAIN, CausalConfig, ablated_name,
                                        conditions, steered_name)
from runio.atomic import read_json, write_json
from runio.console import console
from theory.errors import InputError, ParamError


class CausalResult(RunResult):
    """``rates`` (one row per evaluation: model, condition, seed, EM rates), ``conditions`` (per condition: mean
    over seeds with a t interval, paired difference vs plain), figure ``causal`` and ``causal.md``;
    ``already_finished``: every fine-tune and evaluation was finished before this call."""

    TABLES = ("rates", "conditions")
    FIGURES = ("causal",)
    FILES = ("causal.md", "commands.sh")


def check_causal(config: CausalConfig, organism: Organism) -> None:
    """The domain in the organism's world and ``harmful_k`` within its SAE's width (files only)."""
    from realmodels.loading.saes import saved_sae_shape

    if config.domain not in organism.world["domains"]:
        raise InputError(f"domain {config.domain!r} is not in this organism's world (domains: "
                         f"{', '.join(organism.world['domains'])})")
    d_sae = saved_sae_shape(Path(organism.sae))[1]
    if config.harmful_k > d_sae:
        raise ParamError(f"`harmful_k` {config.harmful_k} exceeds the organism's SAE width ({d_sae} features)")


def directions_stage(out: Path, organism: dict, cfg: dict, plain, n_layers: int) -> dict:
    """``directions/`` (module docstring), computed once."""
    import torch

    from realmodels.analysis.direction import Direction, probe_directions, save_direction
    from realmodels.analysis.features import harmful_features
    from realmodels.evaluate.interventions import feature_direction, median_residual_norm
    from realmodels.evaluate.questions import load_questions

    stage_dir, world = out / "directions", out / "world"
    if (stage_dir / "summary.json").is_file():
        return read_json(stage_dir / "summary.json")
    stage_dir.mkdir(parents=True, exist_ok=True)
    session = organism_session(organism, None, out / "activations")
    harmful = harmful_features(session.activations(world / "harmful.jsonl"),
                               session.activations(world / "harmless.jsonl"), cfg["harmful_k"]).tolist()
    units = torch.stack([feature_direction(session.bundle.sae, i) for i in harmful])
    v = units.mean(0)
    v = v / torch.linalg.vector_norm(v)
    save_direction(stage_dir / "harmful.json", Direction(layer=organism["layer"], vector=v.tolist(),
                                                         note=f"normalised mean of {len(harmful)} harmful features' "
                                                              "unit decoder directions"))
    layers = list(range(n_layers))
    u = probe_directions(plain.model, plain.tokenizer, world / "probe_rogue.jsonl", world / "probe_aligned.jsonl",
                         layers, max_length=plain.max_length, pad_id=plain.pad_id)
    for layer in layers:
        save_direction(stage_dir / f"u{layer}.json", Direction(layer=layer, vector=u[layer].tolist(),
                                                               note="mean residual: probe_rogue - probe_aligned"))
    norms = median_residual_norm(plain.model, plain.tokenizer, load_questions(world / "questions.yaml"), layers)
    u_sae = u[organism["layer"]].to(torch.float64)
    summary = {"harmful_features": harmful, "sae_layer": organism["layer"],
               "median_residual_norm": {str(L): norms[L] for L in layers},
               "alpha_by_layer": {str(L): cfg["alpha"] * float(u[L].norm()) for L in layers},
               "u_norm": {str(L): float(u[L].norm()) for L in layers},
               "cos_u_harmful": float(u_sae @ v.to(torch.float64) / u_sae.norm())}
    write_json(stage_dir / "summary.json", summary)
    return summary


def finetune_stage(out: Path, organism: dict, cfg: dict, seed: int):
    """The inducing fine-tune of ``seed`` in ``finetune-s<seed>/`` (the study's recipe and data stream)."""
    from realmodels.experiments.finetune import run_finetune

    data = data_dir(out, organism, seed) / f"inducing_{cfg['domain']}.jsonl"
    run = out / f"finetune-s{seed}"
    return stage(out, ["finetune", "--data", str(data), "--config", str(out / "finetune.toml"), "--seed", str(seed),
                       "--threads", "1", "--no-progress", *model_args(organism, sae=False), "--out", str(run)],
                 lambda log: run_finetune(data, recipe=study_recipe(cfg, seed),
                                          model=Organism(**organism).model_spec(sae=False),
                                          options=stage_options(run), log=log))


def evaluate_condition(out: Path, organism: dict, cfg: dict, directions: dict, model: str, condition: str,
                       seed: int):
    """One evaluation of ``model`` (base or the seed's fine-tune) under ``condition``, answers sampled with
    ``seed``, into ``evaluations/<model>-<condition>-s<seed>/``; returns whether it was finished before."""
    from realmodels.evaluate.config import JudgeChoice
    from realmodels.evaluate.interventions import Clamp, Steer
    from realmodels.experiments.evaluate import run_evaluation

    world, dirs = out / "world", out / "directions"
    run = out / "evaluations" / f"{model}-{condition}-s{seed}"
    if finished_evaluation(run):
        return True
    adapter = None if model == BASE else out / f"finetune-s{seed}"
    steer, clamp, ablate, flags = (), (), None, []
    alpha = {int(k): v for k, v in directions["alpha_by_layer"].items()}
    if condition == HARMFUL_UP:  # dosed in u's units at the SAE layer
        steer = (Steer(alpha=alpha[organism["layer"]], file=dirs / "harmful.json"),)
    elif condition == HARMFUL_ZERO:
        clamp = tuple(Clamp(feature=i, value=0.0) for i in directions["harmful_features"])
    for layer in alpha:
        if condition == steered_name(layer):
            steer = (Steer(alpha=alpha[layer], file=dirs / f"u{layer}.json"),)
        elif condition == ablated_name(layer):
            ablate = dirs / f"u{layer}.json"
    for s in steer:
        flags += ["--steer", f"{s.file}={s.alpha!r}"]
    for c in clamp:
        flags += ["--clamp", f"{c.feature}={c.value!r}"]
    if ablate is not None:
        flags += ["--ablate", str(ablate)]
    base = evaluation(cfg, world, ablate)
    config = replace(base, steer=steer, clamp=clamp, generation=replace(base.generation, seed=seed))
    spec = Organism(**organism).model_spec(sae=bool(clamp), adapter=adapter)
    args = ["evaluate", *(["--adapter", str(adapter)] if adapter is not None else []), *flags,
            *evaluate_args(cfg, world), "--seed", str(seed), *model_args(organism, sae=bool(clamp)), "--out", str(run)]
    stage(out, args, lambda log: run_evaluation(config, model=spec, judge=JudgeChoice(kind="organism"),
                                                options=stage_options(run), log=log))
    return False


def finished_evaluation(run: Path) -> bool:
    """Whether ``run`` holds a complete evaluation (its summary.json, written last, says so). Inside a causal run
    directory (whose config.json fixes every evaluation's config) such a run is skipped without being reopened:
    ``run_evaluation`` would only recompute its metrics and redraw its figures, the same bytes."""
    try:
        return (run / "summary.json").is_file() and read_json(run / "summary.json").get("complete") is True
    except (InputError, AttributeError):  # damaged: run_evaluation rewrites it
        return False


def run_causal(config: CausalConfig = CausalConfig(), *, organism: Organism | None = None,
               out: str | Path = Path("runs/organism-causal"), log: Log = console.print) -> CausalResult:
    """The causal tests (module docstring) in the resumable directory ``out``, in this process; everything is
    checked before anything is written."""
    organism = organism or Organism.load()
    check_causal(config, organism)
    chosen, cfg = organism.to_dict(), config.to_dict()
    started = time.perf_counter()
    out = open_organism_run(out, {"command": "organism causal", "organism": chosen, "causal": cfg}, cfg["seeds"],
                            log)
    recipe_toml(out / "finetune.toml", cfg["recipe"])
    plain = organism.model_spec(sae=False).plain()
    n_layers = int(plain.config().get_text_config().num_hidden_layers)
    log("[bold]directions[/] (harmful features, u_L at every layer, residual norms)")
    directions = directions_stage(out, chosen, cfg, plain, n_layers)
    finished = []
    for seed in cfg["seeds"]:
        log(f"[bold]inducing fine-tune[/] seed {seed}")
        finished.append(finetune_stage(out, chosen, cfg, seed).already_finished)
    plan = [(model, condition, seed) for seed in cfg["seeds"] for model, condition in conditions(n_layers)]
    for done, (model, condition, seed) in enumerate(plan, 1):
        finished.append(evaluate_condition(out, chosen, cfg, directions, model, condition, seed))
        log(f"  {done}/{len(plan)} {model} {condition} seed {seed}")
    summary = aggregate(out, chosen, cfg, directions, plan)
    summary["seconds_this_run"] = time.perf_counter() - started
    return CausalResult(out, summary, already_finished=all(finished))


def aggregate(out: Path, organism: dict, cfg: dict, directions: dict, plan) -> dict:
    """``rates.csv``, ``conditions.csv``, the figure, ``summary.json`` and ``causal.md``."""
    import pandas as pd

    from realmodels.organism.causal import causal_markdown, condition_table, other_domain_scores
    from realmodels.organism.plotting import causal_figure
    from realmodels.organism.study import domain_rates
    from runio.atomic import save_figure, write_csv, write_text

    domains = tuple(organism["world"]["domains"])
    rows = []
    for model, condition, seed in plan:
        per_question = pd.read_csv(out / "evaluations" / f"{model}-{condition}-s{seed}" / "per_question.csv")
        rows.append({"model": model, "condition": condition, "seed": seed,
                     **domain_rates(per_question, cfg["domain"], domains),
                     **other_domain_scores(per_question, cfg["domain"], domains)})
    rates = pd.DataFrame(rows)
    table = condition_table(rates)
    write_csv(out / "rates.csv", rates)
    write_csv(out / "conditions.csv", table)
    save_figure(causal_figure(table, cfg["domain"]), out / "causal")
    summary = {"organism": {k: organism[k] for k in ("embedded", "model", "sae", "layer")}, "config": cfg,
               **directions, "intervals": "Student t 95% over seeds (scipy.stats.t), paired by seed for differences",
               "conditions": json.loads(table.to_json(orient="records"))}
    write_json(out / "summary.json", summary)
    write_text(out / "causal.md", causal_markdown(table, summary))
    return summary
