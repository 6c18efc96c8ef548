"""``run_filter``: score every training sample by its proximity to the toxic (harmful-behaviour) SAE features
and remove the closest ``fraction`` — or the random baseline at the same fraction
(``realmodels.analysis.filtering``); the paper's mitigation.

Example (on the embedded model organism)::

    from realmodels.analysis.configs import FilterConfig
    from realmodels.experiments import RunOptions, run_filter

    result = run_filter("world/mixed_health.jsonl", "world/harmful.jsonl", "world/harmless.jsonl",
                        FilterConfig(fraction=0.2), options=RunOptions(out="runs/filter", progress=False))
    result.filtered  # the kept samples, a chat JSONL file to fine-tune on
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from realmodels.analysis.configs import FilterConfig, SelectionConfig
from realmodels.data.dataset import Dataset, Datasets
from realmodels.experiments.result import RunResult
from realmodels.experiments.run import Log, run_analysis
from realmodels.experiments.spec import ModelSpec, RunOptions
from runio.atomic import save_figure, write_csv, write_text
from runio.console import console

if TYPE_CHECKING:
    from realmodels.loading.session import Session
    from runio.rundir import RunDir

FILTERED = "filtered.jsonl"


class FilterResult(RunResult):
    """``scores`` (one row per training sample: score, removed), figure ``scores``, and the files
    ``filtered.jsonl`` (kept samples, verbatim) and ``removed.jsonl``."""

    TABLES = ("scores",)
    FIGURES = ("scores",)
    FILES = (FILTERED, "removed.jsonl")

    @property
    def filtered(self) -> Path:
        """The kept samples (chat JSONL, lines verbatim)."""
        return self.path / FILTERED


def run_filter(data: Dataset | str | Path, harmful: Dataset | str | Path, harmless: Dataset | str | Path,
               config: FilterConfig = FilterConfig(), *, selection: SelectionConfig = SelectionConfig(),
               model: ModelSpec = ModelSpec(), options: RunOptions = RunOptions(),
               log: Log = console.print) -> FilterResult:
    """The filter (module docstring) in the resumable run directory ``options.out``; a finished run is returned
    as it is. The toxic features are the top ``selection.harmful_k`` of harmful vs harmless responses."""
    datasets = Datasets()
    train = datasets.open(data, "`data`")
    harmful, harmless = datasets.open(harmful, "`harmful`"), datasets.open(harmless, "`harmless`")
    run_config = {"data": {"train": train.entry(), "harmful": harmful.entry(), "harmless": harmless.entry()},
                  "selection": asdict(selection), "filter": asdict(config)}
    drawn = {}

    def compute(session: Session, run: RunDir) -> dict:
        from realmodels.analysis import plotting  # torch, pandas, matplotlib: imported once the input is checked
        from realmodels.analysis.pipelines import filter_pipeline

        outputs = filter_pipeline(session, data=train, harmful=harmful, harmless=harmless, selection=selection,
                                  config=config, cache=run.cached_json, log=log)
        result = outputs.result
        write_csv(run.file("scores.csv"), result.scores)
        write_text(run.file(FILTERED), "".join(line + "\n" for line in result.kept_lines))
        write_text(run.file("removed.jsonl"), "".join(line + "\n" for line in result.removed_lines))
        drawn["scores"] = plotting.score_histogram(result.scores, outputs.method)
        save_figure(drawn["scores"], run.file("scores"))
        return outputs.summary()

    outcome = run_analysis("filter", model, options, run_config, [train, harmful, harmless], compute, log=log)
    return FilterResult(outcome.run.path, outcome.summary, outcome.already_finished, drawn)
