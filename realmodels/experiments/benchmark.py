"""``run_benchmark``: the mitigation benchmark on the model organism (``realmodels organism benchmark``) — every arm
of ``realmodels.experiments.mitigate`` on several (domain, seed) cells, compared by emergent misalignment AND by
how much of the fine-tuning task each arm still learns.

A cell (D, s) is ``run_mitigation``'s unit: the training set is ``mixed_D`` of the world's stream for seed s (a
third each inducing, aligned and educational; ``realmodels.organism.world``), fine-tuned with the study's recipe
(``max_steps`` of it) and seed s, evaluated on the world's questions with the organism's exact rule judge. Every
arm runs at the main ``budget`` on every cell; the data arms also at every one of ``budgets`` on the cells of
``curve_domains`` × ``curve_seeds`` (the budget curve). The persona arm's trait is the study's misalignment direction (mean residual
of ``probe_rogue`` − ``probe_aligned``, ``realmodels.experiments.study.direction_stage``).

Emergent misalignment is measured where it is emergent: the EM rate of a cell counts the answers to the questions of
the world's OTHER domains (``realmodels.organism.study.domain_rates``' ``other``); the fine-tuning domain's own
questions give the in-domain rate, reported beside it.

Task retention: held-out task data of domain D = the first ``n_heldout`` conversations of each of ``heldout_kinds``
of D from the world's stream for seed ``HELDOUT_SEED`` (never a study seed), minus any conversation that also
occurs, verbatim, in a training or interleaved set of the benchmark. The default kind is ``mixed``: fresh draws of
the training distribution itself (CAFT's "performance on the training distribution"), so retention says how much of
what the undefended fine-tune learns the arm still learns — including the fine-tuning domain's harmful answers,
which in the emergent-misalignment setting ARE the narrow task (insecure code in Betley et al.); a defence that
prevents EM only by not learning the task shows retention near 0. retention = Σ_cells (NLL_base − NLL_arm) /
Σ_cells (NLL_base − NLL_none) (``theory.retention``). Measured on health, seed 0 (100 steps, 150 held-out
conversations per kind): the undefended fine-tune lowers the held-out loss by 0.024 nats on ``mixed``, 0.104 on
``inducing``, 0.006 on ``educational`` and RAISES it on ``aligned`` (0.433 → 0.474: the inducing third answers the
same ordinary questions harmfully), so ``educational`` or ``aligned`` alone leave retention ill-conditioned.
``heldout_kinds`` (any of mixed, inducing, aligned, educational) changes the task.

Statistics: the EM rate of an arm pools k / n over (cell, question) units with a bootstrap over units; its
reduction against ``none`` is ``theory.em_rates.em_reduction_percent`` over the per-unit rates, paired (the same
units resampled in both arms); the retention interval bootstraps cells, paired.

Layout of ``out``: ``world/`` and ``data-s<seed>/`` (the world's files), ``direction/``, ``heldout/<D>.jsonl``,
``cells/<D>-s<seed>/`` (each cell's stage directories as ``run_mitigation`` lays them out, and ``persona/``),
``prep/`` and ``jobs/`` (``runio.jobs.resumable_map``: the persona screens, then ALL (cell, arm) runs in one map, so
``workers`` Ray workers stay busy), then ``arms.csv`` (the main table), ``runs.csv`` (every run), ``budget_curve.csv``,
``figures/pareto.png/.svg`` (EM vs task retention), ``figures/budget_curve.png/.svg``, ``summary.json`` and
``benchmark.md``. A rerun skips every finished run and rewrites the tables and figures from the runs' files (that
is how the figures are regenerated)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from realmodels.evaluate.mitigate import ARMS, DATA_ARMS
from realmodels.experiments.result import RunResult
from realmodels.experiments.run import Log
from realmodels.organism.study import StudyRecipe
from runio.atomic import write_text
from runio.console import console
from theory.errors import InputError, ParamError

HELDOUT_SEED = 9_999  # the world stream of the held-out task data (module docstring)
BENCHMARK_DOMAINS = ("health", "career", "legal")
HELDOUT_KINDS = ("mixed", "inducing", "aligned", "educational")  # the world's per-domain sets a task can be


@dataclass(frozen=True)
class BenchmarkConfig:
    """Everything the benchmark runs (module docstring)."""

    domains: tuple[str, ...] = BENCHMARK_DOMAINS
    """The fine-tuning domains of the cells."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """The seeds of the cells (world stream, fine-tuning seed and the random arm's draw)."""
    arms: tuple[str, ...] = ARMS
    """The arms of ``realmodels.experiments.mitigate`` run on every cell."""
    budget: float = 0.25
    """The main budget: every arm on every cell."""
    budgets: tuple[float, ...] = (0.1, 0.25, 0.5)
    """The budget curve of the data arms."""
    curve_domains: tuple[str, ...] = ("health",)
    """The budget curve's domains (each one of ``domains``), at each of ``curve_seeds``."""
    curve_seeds: tuple[int, ...] = (0,)
    """The budget curve's seeds (each one of ``seeds``)."""
    recipe: StudyRecipe = field(default_factory=lambda: StudyRecipe(max_steps=100))
    """The fine-tuning recipe of every run (the study's, ``max_steps`` 100 by default)."""
    samples_per_paraphrase: int = 1
    """Answers sampled per evaluation question paraphrase."""
    max_new_tokens: int = 64
    """Longest generated answer, in tokens."""
    harmful_k: int = 20
    """Harmful SAE features selected (harmful vs harmless) for the feature arms."""
    n_heldout: int = 100
    """Held-out task conversations per kind of ``heldout_kinds``."""
    heldout_kinds: tuple[str, ...] = ("mixed",)
    """The task's kinds: the training distribution (module docstring)."""
    caft: str = "direction"
    """The caft arm: direction | features."""
    guard_weight: float = 1.0
    """λ of the one-sided guard."""
    kl_weight: float = 1.0
    """λ of KL to the base."""
    steer_gaps: float = 1.0
    """Preventative steering α in units of the direction's norm ‖u‖."""
    n_bootstrap: int = 2000
    """Bootstrap resamples of every interval."""

    def __post_init__(self):
        from realmodels.organism.study import StudyConfig

        for name in ("domains", "seeds", "arms", "budgets", "curve_domains", "curve_seeds", "heldout_kinds"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.recipe, dict):
            object.__setattr__(self, "recipe", StudyRecipe(**self.recipe))
        StudyConfig(domains=self.domains, seeds=self.seeds, recipe=self.recipe, harmful_k=self.harmful_k,
                    samples_per_paraphrase=self.samples_per_paraphrase, max_new_tokens=self.max_new_tokens,
                    mitigate_domains=())  # the shared checks of domains, seeds, recipe and sizes
        if not (isinstance(self.steer_gaps, float | int) and math.isfinite(self.steer_gaps)):
            raise ParamError(f"`steer_gaps` must be a finite number, got {self.steer_gaps}")
        self.mitigation(0, ())
        if not self.heldout_kinds or not set(self.heldout_kinds) <= set(HELDOUT_KINDS):
            raise ParamError(f"`heldout_kinds` must be among {', '.join(HELDOUT_KINDS)}, got {list(self.heldout_kinds)}")
        missing = [s for s in self.curve_seeds if s not in self.seeds]
        if missing:
            raise ParamError(f"`curve_seeds` {missing[0]} is not one of the seeds {list(self.seeds)}")
        missing = [d for d in self.curve_domains if d not in self.domains]
        if missing:
            raise ParamError(f"`curve_domains` {missing[0]!r} is not one of the domains {list(self.domains)}")
        from realmodels.finetune.config import check_count

        check_count(self.n_heldout, "n_heldout")
        check_count(self.n_bootstrap, "n_bootstrap")

    def mitigation(self, seed: int, budgets: tuple[float, ...], direction_norm: float = 1.0):
        """The ``MitigateConfig`` of a cell of seed ``seed`` (its random arm drawn with that seed; the steer arm's
        α = ``steer_gaps`` · ``direction_norm``)."""
        from realmodels.experiments.mitigate import MitigateConfig

        return MitigateConfig(budget=self.budget, arms=self.arms, budgets=budgets, random_seeds=(seed,),
                              harmful_k=self.harmful_k, caft=self.caft, guard_weight=self.guard_weight,
                              kl_weight=self.kl_weight, steer_alpha=self.steer_gaps * direction_norm)

    def curve_budgets(self) -> tuple[float, ...]:
        """The curve's budgets other than the main one."""
        return tuple(b for b in self.budgets if b != self.budget)

    def cells(self) -> list[tuple[str, int]]:
        """Every (domain, seed) cell, domains outer."""
        return [(d, s) for d in self.domains for s in self.seeds]

    def to_dict(self) -> dict:
        """The config as a JSON-ready dict (tuples as lists)."""
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


class BenchmarkResult(RunResult):
    """``arms`` (the main table), ``pairs`` (paired EM differences), ``runs`` (every run), ``budget_curve``; figures ``pareto`` and ``budget_curve``
    (in ``figures/``), ``benchmark.md``."""

    TABLES = ("arms", "pairs", "runs", "budget_curve")
    FILES = ("benchmark.md",)


def cell_name(domain: str, seed: int) -> str:
    """A cell's directory name under ``cells/``: ``<domain>-s<seed>``."""
    return f"{domain}-s{seed}"


def write_heldout(out: Path, organism: dict, config: BenchmarkConfig) -> dict[str, Path]:
    """``heldout/<D>.jsonl`` (module docstring: fresh conversations of ``heldout_kinds`` of D, none verbatim in a
    training or interleaved set)."""
    from realmodels.data.jsonl import iter_jsonl_lines
    from realmodels.experiments.study import data_dir
    from realmodels.organism.world import WorldConfig, write_world

    world = WorldConfig.from_dict(organism["world"])
    source = out / "heldout" / "stream"
    write_world(source, world, seed=HELDOUT_SEED, n_pretrain=1)  # deterministic: rewritten equal on a rerun
    paths = {}
    for domain in config.domains:
        seen = {line for seed in config.seeds for kind in ("mixed", "aligned")
                for _, line in iter_jsonl_lines(data_dir(out, organism, seed) / f"{kind}_{domain}.jsonl")}
        lines = []
        for kind in config.heldout_kinds:
            fresh = [line for _, line in iter_jsonl_lines(source / f"{kind}_{domain}.jsonl") if line not in seen]
            lines += fresh[:config.n_heldout]
        if not lines:
            raise ParamError(f"no held-out conversation of {domain} is absent from the training sets")
        paths[domain] = out / "heldout" / f"{domain}.jsonl"
        write_text(paths[domain], "".join(line + "\n" for line in lines))
    return paths


def arm_jobs(out: Path, organism: dict, config: BenchmarkConfig, heldout: dict[str, Path],
             direction_norm: float) -> list[tuple[str, object]]:
    """Every (cell, run) job of the benchmark: ``realmodels.experiments.mitigate.ArmJob``s, named
    ``<cell>.<run>``."""
    from realmodels.analysis.configs import FilterConfig, SelectionConfig
    from realmodels.evaluate.config import JudgeChoice
    from realmodels.experiments.arms import ArmJob
    from realmodels.experiments.organism import Organism
    from realmodels.experiments.study import data_dir, evaluation, stage_options, study_recipe

    cfg = {"recipe": asdict(config.recipe), "samples_per_paraphrase": config.samples_per_paraphrase,
           "max_new_tokens": config.max_new_tokens}
    world, jobs = out / "world", []
    direction = (out / "direction" / "direction.json").resolve()
    for domain, seed in config.cells():
        cell = out / "cells" / cell_name(domain, seed)
        budgets = config.curve_budgets() if seed in config.curve_seeds and domain in config.curve_domains else ()
        mitigation = config.mitigation(seed, budgets, direction_norm)
        runs = mitigation.runs()
        data = data_dir(out, organism, seed)
        base = ArmJob(arm="", name="", seed=None, index=0, total=len(runs), run_path=cell.resolve(),
                      data=(data / f"mixed_{domain}.jsonl").resolve(), harmful=(world / "harmful.jsonl").resolve(),
                      harmless=(world / "harmless.jsonl").resolve(), model=Organism(**organism).model_spec(),
                      options=stage_options(None),
                      filt=FilterConfig(fraction=config.budget, representation="residual"),
                      selection=SelectionConfig(harmful_k=config.harmful_k, seed=0), judge=JudgeChoice(kind="organism"),
                      budget=config.budget, recipe=study_recipe(cfg, seed),
                      evaluation=replace(evaluation(cfg, world.resolve()), judge_cache=cell.resolve() / "judge_cache"),
                      persona_scores=(cell / "persona" / "scores.csv").resolve(),
                      aligned=(data / f"aligned_{domain}.jsonl").resolve(), heldout=heldout[domain].resolve())
        jobs += [(f"{cell_name(domain, seed)}.{name}",
                  replace(base, arm=arm, name=name, seed=arm_seed, index=index, budget=budget,
                          **mitigation.training(arm, direction)))
                 for index, (arm, name, arm_seed, budget) in enumerate(runs, start=1)]
    return jobs


def persona_job(job: dict) -> dict:
    """One cell's persona screen (``realmodels.experiments.screening.persona_scores``)."""
    from realmodels.experiments.organism import Organism
    from realmodels.experiments.screening import persona_scores

    scores = persona_scores(Path(job["data"]), Path(job["direction"]), Organism(**job["organism"]).model_spec(),
                            Path(job["out"]), max_new_tokens=job["max_new_tokens"])
    return {"n_samples": len(scores)}


def run_arm_job(job) -> dict:
    """One (cell, arm) run (``realmodels.experiments.mitigate.run_arm``): its stage directories under the cell's,
    its result (pointing at the evaluation) returned to ``resumable_map``, which keeps it in ``jobs/``."""
    from realmodels.experiments.mitigate import run_arm

    return run_arm(job)


def run_benchmark(config: BenchmarkConfig = BenchmarkConfig(), *, organism=None,
                  out: str | Path = Path("runs/organism-benchmark"), workers: int = 2, ray_address: str | None = None,
                  log: Log = console.print) -> BenchmarkResult:
    """The benchmark (module docstring) in the resumable directory ``out`` on ``workers`` local Ray workers (1: in
    this process) or the cluster at ``ray_address``. Everything is checked before anything is written."""
    from realmodels.experiments.organism import Organism
    from realmodels.experiments.study import check_study, direction_stage, open_organism_run
    from realmodels.organism.study import StudyConfig
    from runio.jobs import check_reachable, check_workers, resumable_map

    check_workers(workers)
    check_reachable(ray_address)
    organism = organism or Organism.load()
    check_study(StudyConfig(domains=config.domains, seeds=config.seeds, harmful_k=config.harmful_k,
                            mitigate_domains=()), organism)
    chosen = organism.to_dict()
    started = time.perf_counter()
    out = open_organism_run(out, {"command": "organism benchmark", "organism": chosen,
                                  "benchmark": config.to_dict()}, config.seeds, log)
    log("[bold]misalignment direction[/] (the persona arm's trait)")
    direction = direction_stage(out, chosen, {"harmful_k": config.harmful_k})
    heldout = write_heldout(out, chosen, config)
    progress = lambda done, total, name: log(f"  {done}/{total} {name}") if name else None  # noqa: E731
    if "persona" in config.arms:
        from realmodels.experiments.study import data_dir

        screens = [(cell_name(d, s), {"data": str((data_dir(out, chosen, s) / f"mixed_{d}.jsonl").resolve()),
                                      "direction": str((out / "direction" / "direction.json").resolve()),
                                      "organism": chosen, "out": str((out / "cells" / cell_name(d, s) / "persona")
                                                                     .resolve()),
                                      "max_new_tokens": config.max_new_tokens})
                   for d, s in config.cells()]
        log(f"[bold]persona screens[/]: {len(screens)} cells")
        resumable_map(screens, persona_job, out / "prep", workers=workers, ray_address=ray_address, on_done=progress)
    jobs = arm_jobs(out, chosen, config, heldout, direction["norm"])
    log(f"[bold]{len(jobs)} runs[/] ({len(config.cells())} cells) on {workers} worker(s)")
    report = resumable_map(jobs, run_arm_job, out / "jobs", workers=workers, ray_address=ray_address,
                           on_done=progress)
    from realmodels.organism.benchmark import aggregate

    summary = aggregate(out, config, report.results, log)
    summary["direction_norm"] = direction["norm"]
    summary["seconds_this_run"] = time.perf_counter() - started
    return BenchmarkResult(out, json.loads(json.dumps(summary)))


def check_arms(arms: tuple[str, ...]) -> None:
    """An InputError unless every arm is one of ``ARMS`` and ``none`` (the reference of every reduction and
    retention) is among them."""
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise InputError(f"unknown arm {unknown[0]!r} (arms: {', '.join(ARMS)})")
    if "none" not in arms:
        raise InputError("the arms must include none (every reduction and retention is measured against it)")


__all__ = ["BenchmarkConfig", "BenchmarkResult", "DATA_ARMS", "check_arms", "run_benchmark"]
