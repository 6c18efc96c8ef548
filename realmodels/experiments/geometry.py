"""``run_geometry``: are the SAE features tied to misalignment-inducing data closer to the harmful-behaviour
features than those tied to its control? (the paper's central measurement, ``realmodels.analysis.geometry``).

Example (the embedded model organism and its world; ``realmodels.organism.world.write_world`` writes the files)::

    from realmodels.experiments import ModelSpec, RunOptions, run_geometry

    result = run_geometry("world/harmful.jsonl", "world/harmless.jsonl",
                          {"health": ("world/inducing_health.jsonl", "world/aligned_health.jsonl")},
                          options=RunOptions(out="runs/geometry", progress=False))
    result.domains  # one row per domain: proximity of inducing vs control features, CIs, tests, null
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from realmodels.analysis.configs import POOLED, SelectionConfig, StudyConfig
from realmodels.data.dataset import Dataset, Datasets
from realmodels.experiments.result import RunResult
from realmodels.experiments.run import Log, run_analysis
from realmodels.experiments.spec import ModelSpec, RunOptions
from runio.atomic import save_figure, write_csv
from runio.console import console
from theory.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

    from realmodels.loading.session import Session
    from runio.rundir import RunDir

DOMAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_domain_name(name: str, where: str) -> str:
    """``name`` when it is letters, digits, '.', '_' or '-' and not the pooled row's name; else an InputError
    starting with ``where``."""
    if not DOMAIN_NAME.match(name):
        raise InputError(f"{where}: domain name {name!r} must be letters, digits, '.', '_' or '-'")
    if name == POOLED:
        raise InputError(f"{where}: domain name {POOLED!r} is reserved for the pooled row")
    return name


@dataclass(frozen=True)
class Domain:
    """A domain's misalignment-inducing dataset and its non-inducing control (files, or opened datasets)."""

    name: str
    inducing: Dataset | Path
    control: Dataset | Path

    def opened(self, datasets: Datasets) -> Domain:
        """Both datasets opened in the run's ``datasets`` (every line checked, hashed)."""
        return Domain(self.name, datasets.open(self.inducing, f"domain {self.name} inducing"),
                      datasets.open(self.control, f"domain {self.name} control"))


class GeometryResult(RunResult):
    """``domains`` (one row per domain, plus the pooled row with several), ``features`` (every selected feature
    and its proximity), figures ``proximity`` and ``differences``."""

    TABLES = ("domains", "features")
    FIGURES = ("proximity", "differences")

    @property
    def domains(self) -> pd.DataFrame:
        """The per-domain table (``domains.csv``)."""
        return self.table("domains")


def run_geometry(harmful: Dataset | str | Path, harmless: Dataset | str | Path,
                 domains: Mapping[str, tuple[Dataset | str | Path, Dataset | str | Path]] | list[Domain], *,
                 selection: SelectionConfig = SelectionConfig(), study: StudyConfig = StudyConfig(),
                 model: ModelSpec = ModelSpec(), options: RunOptions = RunOptions(),
                 log: Log = console.print) -> GeometryResult:
    """Per domain, the proximity of the inducing data's features to the harmful features against the control
    data's (``realmodels.analysis.pipelines.geometry_pipeline``), in the resumable run directory
    ``options.out``: ``domains.csv``, ``features.csv``, the figures and ``summary.json``. ``domains``: name ->
    (inducing, control), or ``Domain`` objects. Every dataset line is checked and every conversation tokenised
    before the model loads."""
    if isinstance(domains, Mapping):
        domains = [Domain(name, *pair) for name, pair in domains.items()]
    if not domains:
        raise InputError("no domain given: geometry needs at least one (inducing, control) pair")
    datasets = Datasets()
    harmful, harmless = datasets.open(harmful, "`harmful`"), datasets.open(harmless, "`harmless`")
    opened = [Domain(check_domain_name(d.name, "geometry"), d.inducing, d.control).opened(datasets)
              for d in domains]
    config = {
        "data": {"harmful": harmful.entry(), "harmless": harmless.entry(),
                 "domains": {d.name: {"inducing": d.inducing.entry(), "control": d.control.entry()} for d in opened}},
        "selection": asdict(selection), "study": asdict(study),
    }
    drawn = {}

    def compute(session: Session, run: RunDir) -> dict:
        from realmodels.analysis import plotting  # torch, pandas, matplotlib: imported once the input is checked
        from realmodels.analysis.pipelines import geometry_pipeline

        outputs = geometry_pipeline(session, harmful=harmful, harmless=harmless,
                                    domains=[(d.name, d.inducing, d.control) for d in opened], selection=selection,
                                    study=study, cache=run.cached_json, log=log)
        write_csv(run.file("domains.csv"), outputs.domain_table())
        write_csv(run.file("features.csv"), outputs.feature_table())
        drawn["proximity"] = plotting.proximity_distributions(outputs.results, study.proximity)
        save_figure(drawn["proximity"], run.file("proximity"))
        drawn["differences"] = plotting.difference_forest(outputs.results)
        save_figure(drawn["differences"], run.file("differences"))
        return outputs.summary()

    outcome = run_analysis("geometry", model, options, config,
                           [harmful, harmless, *(x for d in opened for x in (d.inducing, d.control))], compute,
                           log=log)
    return GeometryResult(outcome.run.path, outcome.summary, outcome.already_finished, drawn)
