"""``run_amplification``: after fine-tuning, every SAE feature's measured change on probe conversations against
its first-order (JVP) prediction and the similarity-only (isotropic) prediction from the features tied to the
training data — ``toysuper simulate``'s measurement on a real model (``realmodels.analysis.amplification``). The
fine-tune is a LoRA adapter on the model, or a full fine-tuned checkpoint (``finetuned``) compared with the model.

Example (a LoRA adapter trained by ``run_finetune`` on the embedded model organism)::

    from realmodels.experiments import ModelSpec, RunOptions, run_amplification

    result = run_amplification("world/probe_aligned.jsonl", "world/harmful.jsonl", "world/harmless.jsonl",
                               model=ModelSpec(adapter="runs/finetune"),
                               options=RunOptions(out="runs/amplification", progress=False))
    result.summary["agreement"]["first_order"]["r2"]

Two full checkpoints (``realmodels finetune --preset full`` writes runs/full/model): ``model=ModelSpec()`` (the
base) and ``finetuned="runs/full"``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from realmodels.analysis.configs import SelectionConfig
from realmodels.data.dataset import Dataset, Datasets
from realmodels.experiments.result import RunResult
from realmodels.experiments.run import Log, run_analysis, with_run_dir
from realmodels.experiments.spec import ModelSpec, RunOptions
from runio.atomic import read_json, save_figure, write_csv
from runio.console import console
from theory.errors import ParamError

if TYPE_CHECKING:
    from realmodels.loading.session import Session
    from runio.rundir import RunDir

FINETUNE_CONFIG = "config.json"  # a finetune run's config: data.train.path is its training file
FINETUNE_OUTPUTS = ("adapter", "model")  # what a finetune run directory holds: a LoRA adapter or a full model


class AmplificationResult(RunResult):
    """``amplification`` (every SAE feature: measured change, first-order and isotropic predictions), figure
    ``amplification``; the summary holds the agreement statistics and the harmful features' means."""

    TABLES = ("amplification",)
    FIGURES = ("amplification",)


def training_data(adapter: Path | str, data: Dataset | str | Path | None) -> Dataset | Path:
    """``data``, else the training file recorded by the finetune run directory ``adapter`` (a LoRA run's, with
    adapter/, or a full fine-tuning run's, with model/)."""
    if data is not None:
        return data
    config_path = Path(adapter).expanduser() / FINETUNE_CONFIG
    if not any((Path(adapter).expanduser() / name).is_dir() for name in FINETUNE_OUTPUTS) or not config_path.is_file():
        raise ParamError(f"`data` is required: {adapter} is not a `realmodels finetune` run directory (with "
                         f"adapter/ or model/, and {FINETUNE_CONFIG}) that records its training data")
    try:
        return Path(read_json(config_path)["data"]["train"]["path"])
    except (KeyError, TypeError):
        raise ParamError(f"{config_path} records no training data (data.train.path); pass `data`") from None


def run_amplification(probe: Dataset | str | Path, harmful: Dataset | str | Path, harmless: Dataset | str | Path,
                      *, model: ModelSpec, data: Dataset | str | Path | None = None,
                      control: Dataset | str | Path | None = None, selection: SelectionConfig = SelectionConfig(),
                      finetuned: str | Path | None = None, options: RunOptions = RunOptions(),
                      log: Log = console.print) -> AmplificationResult:
    """The measurement (module docstring) in the resumable run directory ``options.out``. The fine-tune is either
    ``model.adapter``, a LoRA adapter (or a finetune run directory), loaded unmerged: the base model is the adapter
    disabled; or ``finetuned``, a full fine-tuned checkpoint of ``model``'s architecture (an HF directory, a full
    finetune run directory or a hub id), ΔW = θ_ft − θ_base over every parameter. ``data``: the fine-tuning data
    (default: what the finetune run directory recorded); its features are contrasted with ``control`` (default:
    ``harmless``)."""
    if (model.adapter is None) == (finetuned is None):
        raise ParamError("give the fine-tune to measure: either `adapter` (a LoRA adapter) or `finetuned` (a full "
                         "fine-tuned checkpoint), not both" if finetuned is not None else
                         "`adapter` or `finetuned` is required: the fine-tune whose amplification is measured")
    run_of = model.adapter if finetuned is None else finetuned
    datasets = Datasets()
    probe = datasets.open(probe, "`probe`")
    recorded = data is None
    train = datasets.open(training_data(run_of, data),
                          f"`data` (recorded in {Path(run_of).expanduser() / FINETUNE_CONFIG})" if recorded
                          else "`data`")
    harmful, harmless = datasets.open(harmful, "`harmful`"), datasets.open(harmless, "`harmless`")
    contrast = harmless if control is None else datasets.open(control, "`control`")
    config = {"data": {"probe": probe.entry(), "train": train.entry(), "control": contrast.entry(),
                       "harmful": harmful.entry(), "harmless": harmless.entry()},
              "selection": asdict(selection)}
    drawn = {}
    other = None
    if finetuned is not None:  # checked here (paths, architecture), before any run directory exists
        options = with_run_dir("amplification", options)
        other = options.session(model, options.out, finetuned=finetuned)
        config["finetuned"] = other.choice.to_config()["finetuned"]

    def compute(session: Session, run: RunDir) -> dict:
        from realmodels.analysis import plotting  # torch, pandas, matplotlib: imported once the input is checked
        from realmodels.analysis.pipelines import amplification_pipeline

        report = amplification_pipeline(session, probe=probe, data=train, control=contrast, harmful=harmful,
                                        harmless=harmless, selection=selection, finetuned=other,
                                        cache=run.cached_json, log=log)
        write_csv(run.file("amplification.csv"), report.table)
        drawn["amplification"] = plotting.amplification_scatter(report.table, report.summary)
        save_figure(drawn["amplification"], run.file("amplification"))
        return report.summary

    try:
        outcome = run_analysis("amplification", model, options, config, [probe, train, contrast, harmful, harmless],
                               compute, merge_adapter=False, log=log)
    finally:
        if other is not None:
            other.close()
    return AmplificationResult(outcome.run.path, outcome.summary, outcome.already_finished, drawn)
