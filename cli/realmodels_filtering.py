"""The ``filter`` run for ``realmodels mitigate``'s geometry and random arms (until mitigate composes the
library's runners itself): ``realmodels.experiments.filter.run_filter`` on the command's ``ModelOptions``."""

from __future__ import annotations

from pathlib import Path

from cli.realmodels_run import ModelOptions
from cli.realmodels_tables import print_filter
from realmodels.analysis.configs import FilterConfig, SelectionConfig
from realmodels.experiments.filter import FILTERED  # noqa: F401  (mitigate reads it from here)


def run_filter(opts: ModelOptions, data_path: Path, harmful_path: Path, harmless_path: Path, filt: FilterConfig,
               selection: SelectionConfig) -> None:
    """``realmodels filter`` in ``opts.out`` (resumable; a finished run is only shown)."""
    from realmodels.experiments.filter import run_filter as run

    model, options = opts.specs()
    result = run(data_path, harmful_path, harmless_path, filt, selection=selection, model=model, options=options)
    print_filter(result.summary, result.path)
