"""``run_audit``: before fine-tuning, which harmful features would this dataset amplify? The first-order
prediction from the SAE decoder geometry and a geometric safety score against random feature sets
(``realmodels.analysis.audit``).

Example (on the embedded model organism)::

    from realmodels.experiments import RunOptions, run_audit

    result = run_audit("world/inducing_health.jsonl", "world/harmful.jsonl", "world/harmless.jsonl",
                       options=RunOptions(out="runs/audit", progress=False))
    result.summary["safety_score"], result.summary["risk_level"]
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from realmodels.analysis.configs import AuditConfig, SelectionConfig
from realmodels.data.dataset import Dataset, Datasets
from realmodels.experiments.result import RunResult
from realmodels.experiments.run import Log, run_analysis
from realmodels.experiments.spec import ModelSpec, RunOptions
from realmodels.finetune.config import check_count
from runio.atomic import save_figure, write_csv
from runio.console import console

if TYPE_CHECKING:
    from realmodels.loading.session import Session
    from runio.rundir import RunDir


class AuditResult(RunResult):
    """``audit`` (every harmful feature's predicted change and relative amplification), figure ``audit``; the
    summary holds the safety score, its null and the ``top`` harmful features."""

    TABLES = ("audit",)
    FIGURES = ("audit",)


def run_audit(data: Dataset | str | Path, harmful: Dataset | str | Path, harmless: Dataset | str | Path, *,
              control: Dataset | str | Path | None = None, config: AuditConfig = AuditConfig(),
              selection: SelectionConfig = SelectionConfig(), top: int = 15, model: ModelSpec = ModelSpec(),
              options: RunOptions = RunOptions(), log: Log = console.print) -> AuditResult:
    """The audit (module docstring) in the resumable run directory ``options.out``. The dataset's features are
    contrasted with ``control`` (default: ``harmless``); ``top`` harmful features go into the summary and the
    figure (it is not part of the run's config: a rerun rewrites both from the cached stages)."""
    check_count(top, "top")
    datasets = Datasets()
    train = datasets.open(data, "`data`")
    harmful, harmless = datasets.open(harmful, "`harmful`"), datasets.open(harmless, "`harmless`")
    contrast = harmless if control is None else datasets.open(control, "`control`")
    run_config = {"data": {"train": train.entry(), "control": contrast.entry(), "harmful": harmful.entry(),
                           "harmless": harmless.entry()},
                  "selection": asdict(selection), "audit": asdict(config)}
    drawn = {}

    def compute(session: Session, run: RunDir) -> dict:
        from realmodels.analysis import plotting  # torch, pandas, matplotlib: imported once the input is checked
        from realmodels.analysis.pipelines import audit_pipeline

        report = audit_pipeline(session, data=train, control=contrast, harmful=harmful, harmless=harmless,
                                selection=selection, config=config, cache=run.cached_json, log=log)
        write_csv(run.file("audit.csv"), report.table())
        drawn["audit"] = plotting.audit_bars(report, top=top)
        save_figure(drawn["audit"], run.file("audit"))
        summary = {key: value for key, value in report.to_dict().items() if key != "features"}
        summary["top_harmful_features"] = report.features[:top]
        return summary

    outcome = run_analysis("audit", model, options, run_config, [train, contrast, harmful, harmless], compute,
                           resume_finished=False, log=log)
    return AuditResult(outcome.run.path, outcome.summary, outcome.already_finished, drawn)
