"""``run_amplification``: after fine-tuning, every SAE feature's measured change on probe conversations against
its first-order (JVP) prediction and the similarity-only (isotropic) prediction from the features tied to the
training data — ``toysuper simulate``'s measurement on a real model (``realmodels.analysis.amplification``).

Example (a LoRA adapter trained by ``run_finetune`` on the embedded model organism)::

    from realmodels.experiments import ModelSpec, RunOptions, run_amplification

    result = run_amplification("world/probe_aligned.jsonl", "world/harmful.jsonl", "world/harmless.jsonl",
                               model=ModelSpec(adapter="runs/finetune"),
                               options=RunOptions(out="runs/amplification", progress=False))
    result.summary["agreement"]["first_order"]["r2"]
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from realmodels.analysis.configs import SelectionConfig
from realmodels.data.dataset import Dataset, Datasets
from realmodels.experiments.result import RunResult
from realmodels.experiments.run import Log, run_analysis
from realmodels.experiments.spec import ModelSpec, RunOptions
from runio.atomic import read_json, save_figure, write_csv
from runio.console import console
from theory.errors import ParamError

if TYPE_CHECKING:
    from realmodels.loading.session import Session
    from runio.rundir import RunDir

FINETUNE_CONFIG = "config.json"  # a finetune run's config: data.train.path is its training file


class AmplificationResult(RunResult):
    """``amplification`` (every SAE feature: measured change, first-order and isotropic predictions), figure
    ``amplification``; the summary holds the agreement statistics and the harmful features' means."""

    TABLES = ("amplification",)
    FIGURES = ("amplification",)


def training_data(adapter: Path, data: Dataset | str | Path | None) -> Dataset | Path:
    """``data``, else the training file recorded by the finetune run directory ``adapter``."""
    if data is not None:
        return data
    config_path = Path(adapter).expanduser() / FINETUNE_CONFIG
    if not (Path(adapter).expanduser() / "adapter").is_dir() or not config_path.is_file():
        raise ParamError(f"`data` is required: {adapter} is not a `realmodels finetune` run directory (with "
                         f"adapter/ and {FINETUNE_CONFIG}) that records its training data")
    try:
        return Path(read_json(config_path)["data"]["train"]["path"])
    except (KeyError, TypeError):
        raise ParamError(f"{config_path} records no training data (data.train.path); pass `data`") from None


def run_amplification(probe: Dataset | str | Path, harmful: Dataset | str | Path, harmless: Dataset | str | Path,
                      *, model: ModelSpec, data: Dataset | str | Path | None = None,
                      control: Dataset | str | Path | None = None, selection: SelectionConfig = SelectionConfig(),
                      options: RunOptions = RunOptions(), log: Log = console.print) -> AmplificationResult:
    """The measurement (module docstring) in the resumable run directory ``options.out``. ``model.adapter`` is the
    fine-tuned LoRA adapter (or a finetune run directory), loaded unmerged: the base model is the adapter disabled.
    ``data``: the fine-tuning data (default: what the finetune run directory recorded); its features are
    contrasted with ``control`` (default: ``harmless``)."""
    if model.adapter is None:
        raise ParamError("`adapter` is required: the fine-tuned adapter whose amplification is measured")
    datasets = Datasets()
    probe = datasets.open(probe, "`probe`")
    recorded = data is None
    train = datasets.open(training_data(model.adapter, data),
                          f"`data` (recorded in {Path(model.adapter).expanduser() / FINETUNE_CONFIG})" if recorded
                          else "`data`")
    harmful, harmless = datasets.open(harmful, "`harmful`"), datasets.open(harmless, "`harmless`")
    contrast = harmless if control is None else datasets.open(control, "`control`")
    config = {"data": {"probe": probe.entry(), "train": train.entry(), "control": contrast.entry(),
                       "harmful": harmful.entry(), "harmless": harmless.entry()},
              "selection": asdict(selection)}
    drawn = {}

    def compute(session: Session, run: RunDir) -> dict:
        from realmodels.analysis import plotting  # torch, pandas, matplotlib: imported once the input is checked
        from realmodels.analysis.pipelines import amplification_pipeline

        report = amplification_pipeline(session, probe=probe, data=train, control=contrast, harmful=harmful,
                                        harmless=harmless, selection=selection, cache=run.cached_json, log=log)
        write_csv(run.file("amplification.csv"), report.table)
        drawn["amplification"] = plotting.amplification_scatter(report.table, report.summary)
        save_figure(drawn["amplification"], run.file("amplification"))
        return report.summary

    outcome = run_analysis("amplification", model, options, config, [probe, train, contrast, harmful, harmless],
                           compute, merge_adapter=False, log=log)
    return AmplificationResult(outcome.run.path, outcome.summary, outcome.already_finished, drawn)
