"""One arm of the mitigation experiment (``realmodels.experiments.mitigate``, ``realmodels.experiments.benchmark``):
its training set (the data arms: ``realmodels.evaluate.mitigate``, ``realmodels.experiments.screening``), its
fine-tune (the training arms: the full set with an in-training defence of ``run_finetune``), its evaluation and,
with held-out task data, its task loss.

The training arms (Wang et al. 2025, Chen et al. 2025, Casademunt et al. 2025 and the guard of issue 22):
- ``caft``: concept-ablation fine-tuning, the trait direction's line (or the harmful SAE features' span)
  projected out of the residual while training (``DefenceConfig.caft``);
- ``guard``: the one-sided guard penalty, λ · mean squared RISE of the harmful features' pre-activations
  (``GuardConfig(kind="rise")``: falls are free);
- ``kl``: λ · KL(p_base ‖ p_θ) over assistant tokens added to the loss;
- ``steer``: preventative steering, h ← h + α û at the direction's layer while training, so the fine-tune need not
  move the model along û itself; the saved adapter runs without it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from realmodels.analysis.configs import FilterConfig, SelectionConfig
from realmodels.evaluate.config import EvaluateConfig, JudgeChoice
from realmodels.experiments.filter import FILTERED
from realmodels.experiments.run import Log
from realmodels.experiments.spec import ModelSpec, RunOptions
from realmodels.finetune.config import DefenceConfig, FinetuneConfig, GuardConfig
from runio.console import console


@dataclass(frozen=True)
class ArmJob:
    """One arm (``name``: the arm, or random-<seed>) and everything its three stages need; a job of
    ``runio.jobs.resumable_map`` (run here, or in a Ray worker: paths are absolute, nothing is open)."""

    arm: str
    name: str
    seed: int | None
    index: int
    total: int
    run_path: Path
    data: Path
    harmful: Path | None
    harmless: Path | None
    model: ModelSpec
    options: RunOptions
    filt: FilterConfig
    selection: SelectionConfig
    judge: JudgeChoice
    budget: float
    recipe: FinetuneConfig
    evaluation: EvaluateConfig
    persona_scores: Path | None = None
    """The persona arm's scores.csv (``screening.persona_scores``)."""
    defence: DefenceConfig | None = None
    """A training arm's in-training defence."""
    guard: GuardConfig | None = None
    """The guard arm's one-sided penalty."""
    aligned: Path | None = None
    """The interleave arm's aligned conversations."""
    heldout: Path | None = None
    """The task's held-out conversations (task retention)."""


def run_arm(job: ArmJob) -> dict:
    """filter -> fine-tune -> evaluate for one arm, each stage its own resumable run directory under the run;
    the job's result points at the evaluation."""
    from realmodels.experiments.evaluate import run_evaluation
    from realmodels.experiments.filter import run_filter
    from realmodels.experiments.finetune import run_finetune

    log = console.print  # in a Ray worker its output stays in the worker
    log(f"[bold]arm {job.index}/{job.total}: {job.name}[/]")
    train = job.data
    stage = replace(job.options, workers=1, ray_address=None)
    if job.arm in ("geometry", "random"):
        filt = replace(job.filt, fraction=job.budget, random=job.arm == "random",
                       seed=job.seed if job.seed is not None else job.selection.seed)
        removal = run_filter(job.data, job.harmful, job.harmless, filt, selection=job.selection, model=job.model,
                             options=replace(stage, out=job.run_path / f"filter-{job.name}"), log=log).summary
        log(f"filter-{job.name}: removed {removal['n_removed']} of {removal['n_samples']} samples "
            f"({removal['method']})")
        train = job.run_path / f"filter-{job.name}" / FILTERED
    elif job.arm == "judge":
        train = judge_filter(job.data, job.judge.build(job.run_path / "judge_cache", job.evaluation.on_error),
                             job.budget, job.run_path / f"filter-{job.name}", log)
    elif job.arm == "persona":
        import pandas as pd

        from realmodels.experiments.screening import persona_filter

        scores = pd.read_csv(job.persona_scores)["score"].to_numpy(dtype=float).copy()
        train = persona_filter(job.data, scores, job.budget, job.run_path / f"filter-{job.name}")
    elif job.arm == "interleave":
        from realmodels.experiments.screening import interleave

        train = interleave(job.data, job.aligned, job.budget, job.run_path / f"filter-{job.name}")
    finetuned = job.run_path / f"finetune-{job.name}"
    plain = job.model.without_sae()
    features = job.guard is not None or (job.defence is not None and job.defence.caft == "features")
    tuned = run_finetune(train, recipe=job.recipe, model=job.model if features else plain, log=log,
                         guard=job.guard, defence=job.defence, harmful=job.harmful if features else None,
                         harmless=job.harmless if features else None,
                         options=RunOptions(out=finetuned, threads=job.options.threads,
                                            progress=job.options.progress)).summary
    loss = "n/a" if tuned["final_loss"] is None else f"{tuned['final_loss']:.4f}"
    log(f"finetune-{job.name}: {tuned['steps']} steps, final loss {loss}")
    evaluated = job.run_path / f"evaluate-{job.name}"
    rates = run_evaluation(job.evaluation, model=replace(plain, adapter=finetuned), judge=job.judge, log=log,
                           options=RunOptions(out=evaluated, threads=job.options.threads,
                                              progress=job.options.progress)).summary
    em = rates["overall"]["em"]
    log(f"evaluate-{job.name}: EM {em['k']} / {em['n']} answers")
    result = {"arm": job.arm, "name": job.name, "budget": job.budget, "evaluate": str(evaluated)}
    if job.heldout is not None:
        from realmodels.evaluate.task import heldout_loss

        result["task_nll"] = heldout_loss(replace(plain, adapter=finetuned), job.heldout)["nll"]
        if job.arm == "none":
            result["base_task_nll"] = heldout_loss(plain, job.heldout)["nll"]
    return result


def judge_filter(data: Path, judge, budget: float, out: Path, log: Log = console.print) -> Path:
    """The judge arm's removal in ``out`` (scores.csv and ``screening.write_removal``'s files); reused when
    finished."""
    if (out / "summary.json").is_file() and (out / FILTERED).is_file():
        return out / FILTERED
    import pandas as pd

    from realmodels.evaluate.mitigate import judge_harmfulness, judge_removal
    from realmodels.experiments.screening import write_removal
    from runio.atomic import write_csv

    out.mkdir(parents=True, exist_ok=True)
    scores = judge_harmfulness(data, judge, report=lambda line: log(f"[yellow]{line}[/]"))
    removed = set(judge_removal(scores, budget).removed.tolist())
    write_csv(out / "scores.csv", pd.DataFrame({"sample": range(len(scores)), "harmfulness": scores,
                                                "removed": [i in removed for i in range(len(scores))]}))
    return write_removal(data, removed, out, {"judge": judge.name, "n_unscored": int(pd.isna(scores).sum())})




def training_defence(arm: str, direction: Path | None, *, caft: str, steer_alpha: float, kl_weight: float,
                     harmful_k: int) -> DefenceConfig | None:
    """The in-training defence of a training arm (module docstring); None for the other arms."""
    if arm == "caft":
        return DefenceConfig(caft=caft, direction=direction if caft == "direction" else None, harmful_k=harmful_k)
    if arm == "steer":
        return DefenceConfig(direction=direction, steer_alpha=steer_alpha)
    if arm == "kl":
        return DefenceConfig(kl_weight=kl_weight)
    return None
