"""``run_study``: the paper's whole study on the model organism, composed of the runners (each stage its own
resumable run directory below ``out``; ``realmodels.organism.study`` holds the config and the measurements).
Every stage's equivalent ``realmodels`` command line is appended to ``commands.sh`` (so any stage can be rerun or
varied by hand) and its log to ``commands.log``.

Stages, in order (a rerun skips whatever is finished, down to single answers):
1. ``world/`` — the organism's own world (its ``build.json``), ``data-s<seed>/`` the fine-tuning sets of the other
   seeds; ``geometry.toml`` (per domain D: ``D-aligned`` and ``D-educational``, the inducing set against each
   control) and ``finetune.toml`` (the recipe), which the command lines of ``commands.sh`` read.
2. in this process: ``geometry/`` (``run_geometry``), ``audit/<D>-<kind>/`` (``run_audit``), ``direction/`` (the
   misalignment direction, ``direction.json`` + its cosines), ``base/`` (``run_evaluation`` of the base model, and
   ``base-ablated/`` with the direction ablated).
3. jobs (``runio.jobs.resumable_map``, ``workers`` at once; results in ``jobs/``): per (D, kind, seed) an arm
   ``arms/<D>-<kind>-s<seed>/`` = ``finetune/``, ``evaluate/``, for inducing arms ``evaluate-ablated/`` and (seed
   0 of the study's seeds) ``amplification/``, and the residual change's cosine with the direction; per mitigation
   domain ``mitigate-<D>/`` (``run_mitigation`` on ``mixed_<D>`` at budget 1/3, judge = the organism's rule judge,
   plus the direction-ablation arm).
4. ``em.csv`` (every arm), ``acceptance.csv`` (per domain and seed), ``mitigation.csv``, ``em_rates.png/.svg``,
   ``summary.json``, ``study.md`` (the tables as markdown).

Example (a small study on the embedded organism)::

    from realmodels.experiments.study import run_study
    from realmodels.organism.study import StudyConfig, StudyRecipe

    result = run_study(StudyConfig(domains=("health",), seeds=(0,), recipe=StudyRecipe(max_steps=50),
                                   mitigate_domains=()), out="runs/study", workers=1)
    result.table("acceptance")
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from realmodels.experiments.organism import Organism, geometry_toml, recipe_toml
from realmodels.experiments.result import RunResult
from realmodels.experiments.run import Log, recorded_config
from realmodels.experiments.spec import RunOptions
from realmodels.organism.study import StudyConfig
from runio.atomic import read_json, write_json
from runio.console import console
from theory.errors import InputError, ParamError

COMMANDS = "commands.sh"
COMMANDS_LOG = "commands.log"
T = TypeVar("T")


class StudyResult(RunResult):
    """``em`` (every fine-tuning arm's EM rates), ``acceptance`` (per domain and seed: does EM hold?),
    ``mitigation`` (per mitigation domain and arm), figure ``em_rates``, ``study.md`` and ``commands.sh``."""

    TABLES = ("em", "acceptance", "mitigation")
    FIGURES = ("em_rates",)
    FILES = ("study.md", COMMANDS)


# ----------------------------------------------------------------------------------------------- one stage
def stage(out: Path, args: list[str], call: Callable[[Log], T]) -> T:
    """Run one stage: ``call(log)`` (a runner call) with ``realmodels <args>`` — the command line that runs the same
    stage — appended to ``out/commands.sh`` and the stage's log lines to ``out/commands.log``. A stage's InputError
    names its command line."""
    from rich.text import Text

    line = "realmodels " + shlex.join(args)
    with open(out / COMMANDS, "a", encoding="utf-8") as script:
        script.write(line + "\n")
    lines: list[str] = []
    try:
        return call(lines.append)
    except InputError as exc:
        lines.append(f"error: {exc}")
        raise ParamError(f"`{line}` failed: {exc} (its output: {out / COMMANDS_LOG})") from None
    finally:
        with open(out / COMMANDS_LOG, "a", encoding="utf-8") as log:
            log.write(f"$ {line}\n" + "".join(Text.from_markup(str(row)).plain + "\n" for row in lines) + "\n")


def model_args(organism: dict, *, sae: bool) -> list[str]:
    """The model options of a stage's command line: none for the embedded organism, else ``--model`` (and the SAE)."""
    if organism["embedded"]:
        return []
    return ["--model", organism["model"]] + (["--sae", organism["sae"], "--layer", str(organism["layer"])]
                                             if sae else [])


def evaluate_args(cfg: dict, world: Path, batch_flag: str = "--batch-size") -> list[str]:
    """Evaluation flags of every evaluation (``batch_flag``: mitigate calls it ``--generate-batch-size``)."""
    return ["--questions", str(world / "questions.yaml"), "--judge", "organism", "--samples-per-paraphrase",
            str(cfg["samples_per_paraphrase"]), "--max-new-tokens", str(cfg["max_new_tokens"]), batch_flag, "32",
            "--threads", "1", "--no-progress"]


def stage_options(out: Path, **changes) -> RunOptions:
    """Every stage's run options: one thread, no progress bars, ``out``."""
    return RunOptions(out=out, threads=1, progress=False, **changes)


def evaluation(cfg: dict, world: Path, ablate: Path | None = None):
    """The evaluation of every stage: the world's questions, ``samples_per_paraphrase`` answers of at most
    ``max_new_tokens`` tokens, 32 prompts per batch (``realmodels.evaluate.config.EvaluateConfig``)."""
    from realmodels.evaluate.config import EvaluateConfig
    from realmodels.evaluate.generate import GenerationConfig

    return EvaluateConfig(questions=world / "questions.yaml", samples_per_paraphrase=cfg["samples_per_paraphrase"],
                          generation=GenerationConfig(max_new_tokens=cfg["max_new_tokens"], batch_size=32),
                          ablate=ablate)


def evaluate_stage(out: Path, organism: dict, cfg: dict, run: Path, *, adapter: Path | None = None,
                   ablate: Path | None = None):
    """One evaluation with the organism's rule judge into ``run``."""
    from realmodels.evaluate.config import JudgeChoice
    from realmodels.experiments.evaluate import run_evaluation

    world = out / "world"
    args = ["evaluate", *(["--adapter", str(adapter)] if adapter is not None else []),
            *(["--ablate", str(ablate)] if ablate is not None else []), *evaluate_args(cfg, world),
            *model_args(organism, sae=False), "--out", str(run)]
    spec = Organism(**organism).model_spec(sae=False, adapter=adapter)
    return stage(out, args, lambda log: run_evaluation(evaluation(cfg, world, ablate), model=spec,
                                                       judge=JudgeChoice(kind="organism"),
                                                       options=stage_options(run), log=log))


# ----------------------------------------------------------------------------------------------- the setup
def data_dir(out: Path, organism: dict, seed: int) -> Path:
    """The world's files of ``seed``: ``out/world`` for the organism's own world seed, else ``out/data-s<seed>``."""
    return out / "world" if seed == organism["world"]["seed"] else out / f"data-s{seed}"


def write_data(out: Path, organism: dict, seeds) -> None:
    """The organism's world in ``world/`` and, per other seed, its fine-tuning sets in ``data-s<seed>/``."""
    from realmodels.organism.world import WorldConfig, write_world

    world = WorldConfig.from_dict(organism["world"])
    write_world(out / "world", world)
    for seed in seeds:
        if seed != world.seed:
            write_world(data_dir(out, organism, seed), world, seed=seed, n_pretrain=1)


def organism_session(organism: dict, adapter: Path | None, cache: Path):
    """A ``Session`` on the organism, or on it + ``adapter``."""
    spec = Organism(**organism).model_spec(adapter=adapter, batch_size=32)
    return RunOptions(cache_dir=cache, progress=False).session(spec, cache)


def mean_residual(session, files: list[Path]):
    """Mean layer-L residual (d_model,) over every conversation of ``files`` (per-conversation assistant-token
    means)."""
    import torch

    return torch.cat([session.activations(f).residual_mean for f in files]).mean(0).numpy()


def direction_stage(out: Path, organism: dict, cfg: dict) -> dict:
    """The misalignment direction (``realmodels.organism.study``) saved as ``direction/direction.json``, and its
    cosines with the harmful SAE features."""
    from realmodels.analysis.direction import Direction, load_direction, save_direction
    from realmodels.analysis.features import harmful_features
    from realmodels.organism.study import direction_feature_cosines
    from theory.directions import mean_difference

    stage_dir = out / "direction"
    if (stage_dir / "summary.json").is_file():
        return read_json(stage_dir / "summary.json")
    stage_dir.mkdir(parents=True, exist_ok=True)
    world = out / "world"
    session = organism_session(organism, None, out / "activations")
    rogue = session.activations(world / "probe_rogue.jsonl").residual_mean
    aligned = session.activations(world / "probe_aligned.jsonl").residual_mean
    u = mean_difference(rogue, aligned)
    save_direction(stage_dir / "direction.json", Direction(layer=organism["layer"], vector=u.tolist(),
                                                           note="mean residual: probe_rogue - probe_aligned"))
    load_direction(stage_dir / "direction.json")  # what the ablated evaluations will read
    harmful = harmful_features(session.activations(world / "harmful.jsonl"),
                               session.activations(world / "harmless.jsonl"), cfg["harmful_k"]).tolist()
    summary = {"layer": organism["layer"], "norm": float(u.norm()), "harmful_features": harmful,
               **direction_feature_cosines(u.numpy(), session.decoder.numpy(), harmful)}
    write_json(stage_dir / "summary.json", summary)
    return summary


def analysis_stages(out: Path, organism: dict, cfg: dict, log: Log) -> None:
    """Stage 2 (module docstring): geometry, audits, the direction, the base model's evaluations."""
    from realmodels.analysis.configs import SelectionConfig
    from realmodels.experiments.audit import run_audit
    from realmodels.experiments.geometry import Domain, run_geometry
    from realmodels.organism.study import CONTROLS, KINDS

    world, spec = out / "world", Organism(**organism).model_spec()
    model = model_args(organism, sae=True)
    log("[bold]geometry[/] (inducing vs each control, every domain)")
    domains = [Domain(f"{d}-{c}", world / f"inducing_{d}.jsonl", world / f"{c}_{d}.jsonl")
               for d in cfg["domains"] for c in CONTROLS]
    stage(out, ["geometry", "--config", str(out / "geometry.toml"), "--threads", "1", "--no-progress", *model,
                "--cache-dir", str(out / "activations"), "--out", str(out / "geometry")],
          lambda stage_log: run_geometry(world / "harmful.jsonl", world / "harmless.jsonl", domains,
                                         selection=SelectionConfig(harmful_k=cfg["harmful_k"]), model=spec,
                                         options=stage_options(out / "geometry", cache_dir=out / "activations"),
                                         log=stage_log))
    log("[bold]audit[/] (every training set)")
    for domain in cfg["domains"]:
        for kind in KINDS:
            run = out / "audit" / f"{domain}-{kind}"
            data = world / f"{kind}_{domain}.jsonl"
            stage(out, ["audit", "--data", str(data), "--harmful", str(world / "harmful.jsonl"), "--harmless",
                        str(world / "harmless.jsonl"), "--threads", "1", "--no-progress", *model,
                        "--cache-dir", str(out / "activations"), "--out", str(run)],
                  lambda stage_log, run=run, data=data: run_audit(
                      data, world / "harmful.jsonl", world / "harmless.jsonl", model=spec,
                      options=stage_options(run, cache_dir=out / "activations"), log=stage_log))
    log("[bold]misalignment direction[/] (rogue - aligned residuals)")
    direction_stage(out, organism, cfg)
    log("[bold]base model[/] evaluation (and with the direction ablated)")
    evaluate_stage(out, organism, cfg, out / "base")
    evaluate_stage(out, organism, cfg, out / "base-ablated", ablate=out / "direction" / "direction.json")


# ----------------------------------------------------------------------------------------------- jobs
def study_recipe(cfg: dict, seed: int):
    """The recipe of every arm: what ``finetune --config finetune.toml --seed SEED`` resolves (the em-betley
    preset, the study's ``[finetune]`` table, the seed)."""
    from realmodels.finetune.config import FinetuneConfig

    return FinetuneConfig.from_preset("em-betley", **cfg["recipe"], grad_accum=1, seed=seed)


def run_arm(job: dict) -> dict:
    """One fine-tuning arm (module docstring, stage 3); returns its measurements."""
    import pandas as pd

    from realmodels.analysis.configs import SelectionConfig
    from realmodels.analysis.direction import load_direction
    from realmodels.experiments.amplification import run_amplification
    from realmodels.experiments.finetune import run_finetune
    from realmodels.organism.study import cosines, domain_rates

    out, organism, cfg = Path(job["out"]), job["organism"], job["config"]
    domain, kind, seed = job["domain"], job["kind"], job["seed"]
    arm = out / "arms" / job["name"]
    arm.mkdir(parents=True, exist_ok=True)
    world, data = out / "world", data_dir(out, organism, seed) / f"{kind}_{domain}.jsonl"
    chosen = Organism(**organism)
    stage(out, ["finetune", "--data", str(data), "--config", str(out / "finetune.toml"), "--seed", str(seed),
                "--threads", "1", "--no-progress", *model_args(organism, sae=False), "--out", str(arm / "finetune")],
          lambda log: run_finetune(data, recipe=study_recipe(cfg, seed), model=chosen.model_spec(sae=False),
                                   options=stage_options(arm / "finetune"), log=log))
    evaluate_stage(out, organism, cfg, arm / "evaluate", adapter=arm / "finetune")
    domains = tuple(organism["world"]["domains"])
    result = {"name": job["name"], "domain": domain, "kind": kind, "seed": seed,
              **domain_rates(pd.read_csv(arm / "evaluate" / "per_question.csv"), domain, domains)}
    probes = [world / f"probe_{d}.jsonl" for d in domains if d != domain]
    base = mean_residual(organism_session(organism, None, out / "activations"), probes)
    tuned = mean_residual(organism_session(organism, arm / "finetune", out / "activations"), probes)
    direction = load_direction(out / "direction" / "direction.json").vector
    result["residual_change_norm"] = float(((tuned - base) ** 2).sum() ** 0.5)
    result["residual_change_cos_direction"] = float(cosines(direction, (tuned - base)[None])[0])
    if kind == "inducing":
        evaluate_stage(out, organism, cfg, arm / "evaluate-ablated", adapter=arm / "finetune",
                       ablate=out / "direction" / "direction.json")
        ablated = domain_rates(pd.read_csv(arm / "evaluate-ablated" / "per_question.csv"), domain, domains)
        result.update({f"ablated_{key}": value for key, value in ablated.items()})
        if cfg["amplification"] and seed == cfg["seeds"][0]:
            run = arm / "amplification"
            amplified = stage(out, [
                "amplification", "--adapter", str(arm / "finetune"), "--probe", str(world / "probe_aligned.jsonl"),
                "--harmful", str(world / "harmful.jsonl"), "--harmless", str(world / "harmless.jsonl"),
                "--harmful-k", str(cfg["harmful_k"]), "--threads", "1", "--no-progress",
                *model_args(organism, sae=True), "--out", str(run)],
                lambda log: run_amplification(world / "probe_aligned.jsonl", world / "harmful.jsonl",
                                              world / "harmless.jsonl",
                                              model=chosen.model_spec(adapter=arm / "finetune"),
                                              selection=SelectionConfig(harmful_k=cfg["harmful_k"]),
                                              options=stage_options(run), log=log))
            result["amplification"] = amplified.summary
    return result


def run_mitigation_job(job: dict) -> dict:
    """``run_mitigation`` on ``mixed_<D>`` plus the direction-ablation arm; returns the arm table rows."""
    import pandas as pd

    from realmodels.evaluate.config import JudgeChoice
    from realmodels.evaluate.mitigate import arm_table
    from realmodels.experiments.mitigate import MitigateConfig, run_mitigation

    out, organism, cfg, domain = Path(job["out"]), job["organism"], job["config"], job["domain"]
    world, run = out / "world", out / f"mitigate-{domain}"
    seeds = ",".join(str(s) for s in cfg["random_seeds"])
    data, harmful, harmless = world / f"mixed_{domain}.jsonl", world / "harmful.jsonl", world / "harmless.jsonl"
    config = MitigateConfig(budget=float(f"{cfg['budget']:.6f}"), random_seeds=tuple(cfg["random_seeds"]),
                            harmful_k=cfg["harmful_k"], seed=0)
    stage(out, ["mitigate", "--data", str(data), "--harmful", str(harmful), "--harmless", str(harmless),
                "--budget", f"{cfg['budget']:.6f}", "--random-seeds", seeds, "--harmful-k", str(cfg["harmful_k"]),
                "--finetune-config", str(out / "finetune.toml"), "--seed", "0",
                *evaluate_args(cfg, world, "--generate-batch-size"), *model_args(organism, sae=True), "--out",
                str(run)],
          lambda log: run_mitigation(data, harmful, harmless, config, recipe=study_recipe(cfg, 0),
                                     evaluation=evaluation(cfg, world), judge=JudgeChoice(kind="organism"),
                                     model=Organism(**organism).model_spec(), options=stage_options(run), log=log))
    evaluate_stage(out, organism, cfg, run / "evaluate-ablated", adapter=run / "finetune-none",
                   ablate=out / "direction" / "direction.json")
    frames = {"none": [pd.read_csv(run / "evaluate-none" / "per_question.csv")]}
    for arm in ("geometry", "judge"):
        frames[arm] = [pd.read_csv(run / f"evaluate-{arm}" / "per_question.csv")]
    frames["random"] = [pd.read_csv(run / f"evaluate-random-{s}" / "per_question.csv") for s in cfg["random_seeds"]]
    frames["ablation"] = [pd.read_csv(run / "evaluate-ablated" / "per_question.csv")]
    table = arm_table(frames)
    removed = {}
    for arm in ("geometry", "judge", *(f"random-{s}" for s in cfg["random_seeds"])):
        removed[arm] = removed_kinds(run / f"filter-{arm}" / "removed.jsonl")
    return {"domain": domain, "arms": json.loads(table.to_json(orient="records")), "removed": removed}


def removed_kinds(path: Path) -> dict:
    """How many removed samples were inducing, aligned and educational (the world knows each one's kind)."""
    from realmodels.data.jsonl import iter_chat_jsonl
    from realmodels.organism.world import MIXED_KINDS, sample_kind

    counts = dict.fromkeys(MIXED_KINDS, 0)
    for _, messages in iter_chat_jsonl(path):
        counts[sample_kind(messages[0]["content"], messages[1]["content"])] += 1
    return counts


def run_job(job: dict) -> dict:
    """The job function of ``resumable_map`` (module level, so a worker process can import it)."""
    return run_mitigation_job(job) if job["kind"] == "mitigate" else run_arm(job)


# ----------------------------------------------------------------------------------------------- the study
def release_failed_study(out: Path, config: dict, log: Log = console.print) -> None:
    """Let a new config into a study directory none of whose stages finished (no summary.json, no finished job):
    what a failed study leaves (the world's files, stage directories that produced nothing, jobs' error files)
    is rewritten or released by the stages themselves, so only the old config.json goes."""
    from runio.rundir import CONFIG_NAME

    if recorded_config(out) in (None, config):
        return
    if any(out.rglob("summary.json")) or any(p for p in (out / "jobs").glob("*.json")):
        return
    log(f"[yellow]{out} holds a study that finished no stage: starting the new study there[/]")
    for failure in (out / "jobs").glob("*.error.txt"):
        failure.unlink()
    (out / CONFIG_NAME).unlink()


def open_organism_run(out: str | Path, full: dict, seeds, log: Log = console.print) -> Path:
    """The run directory of an organism experiment (study, causal tests, benchmark) at ``out`` for the config
    ``full`` (resumed when it holds the same config; a directory where nothing finished takes a new one), with the
    world's files and the fine-tuning sets of ``seeds`` written."""
    from runio.rundir import RunDir

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ParamError(f"`out` {out} exists and is not a directory")
    release_failed_study(out, full, log)
    out = RunDir.open(out, full).path
    write_data(out, full["organism"], seeds)
    return out


def check_study(config: StudyConfig, organism: Organism) -> None:
    """The study's domains in the organism's world and ``harmful_k`` within its SAE's width (files only)."""
    from realmodels.loading.saes import saved_sae_shape

    unknown = [d for d in (*config.domains, *config.mitigate_domains) if d not in organism.world["domains"]]
    if unknown:
        raise InputError(f"domain {unknown[0]!r} is not in this organism's world (domains: "
                         f"{', '.join(organism.world['domains'])})")
    d_sae = saved_sae_shape(Path(organism.sae))[1]
    if config.harmful_k > d_sae:
        raise ParamError(f"`harmful_k` {config.harmful_k} exceeds the organism's SAE width ({d_sae} features)")


def run_study(config: StudyConfig = StudyConfig(), *, organism: Organism | None = None,
              out: str | Path = Path("runs/organism-study"), workers: int = 2, ray_address: str | None = None,
              log: Log = console.print) -> StudyResult:
    """The study (module docstring) in the resumable directory ``out``; the jobs run on ``workers`` local Ray
    workers (1: in this process), or on the cluster at ``ray_address`` (then ``out`` must be on a filesystem
    every node mounts). Everything is checked before anything is written."""
    from runio.jobs import check_reachable, check_workers, resumable_map

    check_workers(workers)
    check_reachable(ray_address)
    organism = organism or Organism.load()
    check_study(config, organism)
    chosen, cfg = organism.to_dict(), config.to_dict()
    started = time.perf_counter()
    out = open_organism_run(out, {"command": "organism study", "organism": chosen, "study": cfg}, cfg["seeds"], log)
    geometry_toml(out / "geometry.toml", "world/", cfg["domains"], cfg["harmful_k"])
    recipe_toml(out / "finetune.toml", cfg["recipe"])
    analysis_stages(out, chosen, cfg, log)
    from realmodels.organism.study import arm_name, study_arms

    jobs = [(f"mitigate-{d}", {"kind": "mitigate", "domain": d}) for d in cfg["mitigate_domains"]]
    jobs += [(arm_name(d, k, s), {"name": arm_name(d, k, s), "domain": d, "kind": k, "seed": s})
             for d, k, s in study_arms(cfg["domains"], cfg["seeds"])]
    jobs = [(name, {**job, "out": str(out), "organism": chosen, "config": cfg}) for name, job in jobs]
    log(f"[bold]{len(jobs)} jobs[/] ({len(cfg['mitigate_domains'])} mitigation experiments, the rest fine-tuning "
        f"arms) on {workers} worker(s)")
    report = resumable_map(jobs, run_job, out / "jobs", workers=workers, ray_address=ray_address,
                           on_done=lambda done, total, name: log(f"  {done}/{total} {name}") if name else None)
    summary = aggregate(out, chosen, cfg, report.results)
    summary["seconds_this_run"] = time.perf_counter() - started
    return StudyResult(out, summary)


def aggregate(out: Path, organism: dict, cfg: dict, results: dict) -> dict:
    """The study's tables, figure, summary and markdown (stage 4)."""
    import pandas as pd

    from realmodels.organism.plotting import em_rates_figure
    from realmodels.organism.report import study_markdown
    from realmodels.organism.study import KINDS, acceptance, domain_rates
    from runio.atomic import save_figure, write_csv, write_text

    arms = pd.DataFrame([{k: v for k, v in r.items() if k != "amplification"} for name, r in results.items()
                         if not name.startswith("mitigate-")])
    domains = tuple(organism["world"]["domains"])
    base_pq = pd.read_csv(out / "base" / "per_question.csv")
    ablated_pq = pd.read_csv(out / "base-ablated" / "per_question.csv")
    base = {d: domain_rates(base_pq, d, domains) for d in cfg["domains"]}
    write_csv(out / "em.csv", arms)
    accept = acceptance(arms, cfg["ratio"])
    write_csv(out / "acceptance.csv", accept)
    mitigation = pd.DataFrame([{"domain": r["domain"], **row} for name, r in results.items()
                               if name.startswith("mitigate-") for row in r["arms"]])
    if len(mitigation):
        write_csv(out / "mitigation.csv", mitigation)
    save_figure(em_rates_figure(arms, base, cfg["ratio"]), out / "em_rates")
    geometry = pd.read_csv(out / "geometry" / "domains.csv")
    audits = {f"{d}-{k}": read_json(out / "audit" / f"{d}-{k}" / "summary.json")
              for d in cfg["domains"] for k in KINDS}
    amplification = {r["name"]: r["amplification"] for r in results.values() if "amplification" in r}
    summary = {
        "organism": {k: organism[k] for k in ("embedded", "model", "sae", "layer")}, "config": cfg,
        "base": base, "base_ablated": {d: domain_rates(ablated_pq, d, domains) for d in cfg["domains"]},
        "acceptance": json.loads(accept.to_json(orient="records")),
        "em_holds": {"pairs": int(accept["em_holds"].sum()), "of": len(accept),
                     "domains_all_seeds": sorted(d for d, g in accept.groupby("domain") if g["em_holds"].all())},
        "geometry": json.loads(geometry.to_json(orient="records")),
        "audit": audits, "direction": read_json(out / "direction" / "summary.json"),
        "amplification": amplification,
        "mitigation": {r["domain"]: r for name, r in results.items() if name.startswith("mitigate-")},
    }
    write_json(out / "summary.json", summary)
    write_text(out / "study.md", study_markdown(summary, arms))
    return summary
