"""The ``filter`` command's run — score every training sample by proximity to the toxic SAE features (or draw
the random baseline) and write the filtered JSONL — as a function, shared by ``realmodels filter`` and the
geometry and random arms of ``realmodels mitigate``."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from cli.realmodels_inputs import dataset_entry
from cli.realmodels_run import ModelOptions, run_command
from cli.realmodels_tables import console, print_filter
from realmodels.analysis.configs import FilterConfig, SelectionConfig
from runio.atomic import save_figure, write_csv, write_text

if TYPE_CHECKING:
    from realmodels.loading.session import Session
    from runio.rundir import RunDir

FILTERED = "filtered.jsonl"


def run_filter(opts: ModelOptions, data_path: Path, harmful_path: Path, harmless_path: Path, filt: FilterConfig,
               selection: SelectionConfig) -> None:
    """``realmodels filter`` in ``opts.out`` (resumable; a finished run is only shown)."""
    run_config = {"data": {"train": dataset_entry(data_path), "harmful": dataset_entry(harmful_path),
                           "harmless": dataset_entry(harmless_path)},
                  "selection": asdict(selection), "filter": asdict(filt)}

    def compute(session: Session, run: RunDir) -> dict:
        from realmodels.analysis import plotting  # torch, pandas, matplotlib: imported once the input is checked
        from realmodels.analysis.pipelines import filter_pipeline

        outputs = filter_pipeline(session, data=data_path, harmful=harmful_path, harmless=harmless_path,
                                  selection=selection, config=filt, cache=run.cached_json, log=console.print)
        result = outputs.result
        write_csv(run.file("scores.csv"), result.scores)
        write_text(run.file(FILTERED), "".join(line + "\n" for line in result.kept_lines))
        write_text(run.file("removed.jsonl"), "".join(line + "\n" for line in result.removed_lines))
        save_figure(plotting.score_histogram(result.scores, outputs.method), run.file("scores"))
        return outputs.summary()

    run_command("filter", opts, run_config, compute, show=print_filter)
