"""``run_diff``: SAE model diffing — every SAE feature's mean activation and firing frequency on probe conversations
under the base model and the fine-tuned one (a LoRA adapter on it, or a full fine-tuned checkpoint), the
difference, ranked, with the harmful-behaviour features marked when ``harmful``/``harmless`` are given
(``realmodels.analysis.diff``).

Example (a full fine-tune of the embedded model organism by ``realmodels finetune --preset full``)::

    from realmodels.experiments import ModelSpec, RunOptions, run_diff

    result = run_diff("world/probe_health.jsonl", model=ModelSpec(), finetuned="runs/full",
                      harmful="world/harmful.jsonl", harmless="world/harmless.jsonl",
                      options=RunOptions(out="runs/diff", progress=False))
    result.summary["top_increased"][0]["feature"]
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
from runio.atomic import save_figure, write_csv
from runio.console import console
from theory.errors import ParamError

if TYPE_CHECKING:
    from realmodels.loading.session import Session
    from runio.rundir import RunDir


class DiffResult(RunResult):
    """``diff`` (every SAE feature, ranked by its change: means and firing frequencies under both models), figure
    ``diff``; the summary holds the top movers and, with harmful features, where they rank."""

    TABLES = ("diff",)
    FIGURES = ("diff",)


def run_diff(probe: Dataset | str | Path, *, model: ModelSpec, finetuned: str | Path | None = None,
             harmful: Dataset | str | Path | None = None, harmless: Dataset | str | Path | None = None,
             selection: SelectionConfig = SelectionConfig(), options: RunOptions = RunOptions(),
             log: Log = console.print) -> DiffResult:
    """The diff (module docstring) in the resumable run directory ``options.out``. The fine-tuned model is either
    ``model.adapter`` (base = the adapter disabled) or ``finetuned``, a full checkpoint of ``model``'s architecture
    (an HF directory, a full finetune run directory or a hub id; base = ``model``). The harmful features are
    ``select_features`` of ``harmful`` against ``harmless`` on the base model (``selection``), both or neither."""
    if (model.adapter is None) == (finetuned is None):
        raise ParamError("give the fine-tune to diff: either `adapter` (a LoRA adapter) or `finetuned` (a full "
                         "fine-tuned checkpoint), not both" if finetuned is not None else
                         "`adapter` or `finetuned` is required: the fine-tuned model diffed against the base")
    if (harmful is None) != (harmless is None):
        raise ParamError("give both `harmful` and `harmless` (they define the harmful features), or neither")
    datasets = Datasets()
    probe = datasets.open(probe, "`probe`")
    pair = None if harmful is None else (datasets.open(harmful, "`harmful`"), datasets.open(harmless, "`harmless`"))
    config = {"data": {"probe": probe.entry()}, "selection": None}
    if pair is not None:
        config["data"] |= {"harmful": pair[0].entry(), "harmless": pair[1].entry()}
        config["selection"] = asdict(selection)
    other = None
    if finetuned is not None:  # checked here (paths, architecture), before any run directory exists
        options = with_run_dir("diff", options)
        other = options.session(model, options.out, finetuned=finetuned)
        config["finetuned"] = other.choice.to_config()["finetuned"]
    drawn = {}

    def compute(session: Session, run: RunDir) -> dict:
        from realmodels.analysis import plotting  # torch, pandas, matplotlib: imported once the input is checked
        from realmodels.analysis.amplification import BaseModelActivations
        from realmodels.analysis.diff import diff_report
        from realmodels.analysis.pipelines import harmful_selection

        base = BaseModelActivations(session)  # the session's model with its adapter disabled, or the base itself
        log("the probes' SAE features under the base model")
        before = base.activations(probe)
        log("the probes' SAE features under the fine-tuned model")
        after = (session if other is None else other).activations(probe)
        harm = None if pair is None else harmful_selection(base, *pair, selection, cache=run.cached_json, log=log)
        report = diff_report(before, after, None if harm is None else harm.indices)
        write_csv(run.file("diff.csv"), report.table)
        drawn["diff"] = plotting.diff_figure(report.table, report.summary)
        save_figure(drawn["diff"], run.file("diff"))
        return report.summary

    try:
        outcome = run_analysis("diff", model, options, config, [probe, *(pair or ())], compute, merge_adapter=False,
                               log=log)
    finally:
        if other is not None:
            other.close()
    return DiffResult(outcome.run.path, outcome.summary, outcome.already_finished, drawn)
