"""The toy runners called from Python (``toysuper.runners``) on tiny configs given as dicts: the result's summary is
the run directory's summary file and its tables are its CSVs; a second call into the same directory resumes
(nothing is recomputed: the computations are replaced by ones that fail, and every file keeps its bytes); bad
input (unknown key, bad value, wrong config type, bad workers or Ray address, a different config in the directory)
is an InputError before anything is written; ``run_figures`` runs every study and copies the figures."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pandas as pd
import pytest

import toysuper.runners as runners
import toysuper.runs
from runio.atomic import read_json
from runio.rundir import ALREADY_FINISHED
from tests.cli.test_toysuper_studies import TINY
from theory.errors import InputError, ParamError
from toysuper.config import SimulateConfig
from toysuper.em import geometry, inducing, mitigate, sweep
from toysuper.em.config import SweepConfig

STUDIES = ("simulate", "inducing", "mitigate", "density", "geometry")
RESULT_FILE = {"geometry": "geometry.json"}  # the others: summary.json
COMPUTATIONS = {  # study -> (module, attribute) of its computation: a resumed run must not call it
    "simulate": (runners, "simulate"), "inducing": (inducing, "run_inducing"),
    "mitigate": (mitigate, "run_mitigations"), "density": (sweep, "run_cell"), "geometry": (geometry, "run_geometry"),
}


def tiny(study: str) -> dict:
    """The CLI tests' tiny config of ``study`` as the nested dict a Python user passes."""
    return tomllib.loads(TINY[study])


def files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _fail(*_, **__):
    raise AssertionError("a resumed run recomputed")


@pytest.mark.parametrize("study", STUDIES)
def test_runner_result_is_the_run_directory_and_a_second_call_resumes(study, tmp_path, monkeypatch):
    out, lines = tmp_path / study, []
    run = runners.RUNNERS[study](tiny(study), out, log=lines.append)
    assert run.path == out and not run.already_finished
    assert run.summary == read_json(out / RESULT_FILE.get(study, "summary.json"))
    assert read_json(out / "config.json")  # bound to its config
    for name in run.TABLES:
        assert len(run.table(name)) > 0 and run.table(name).equals(pd.read_csv(out / f"{name}.csv"))
    for name, png in run.figures.items():
        assert png.is_file() and png.with_suffix(".svg").is_file(), name
    before = files(out)

    monkeypatch.setattr(toysuper.runs, "train", _fail)
    monkeypatch.setattr(*COMPUTATIONS[study], _fail)
    lines.clear()
    again = runners.RUNNERS[study](tiny(study), out, log=lines.append)
    assert again.already_finished and again.summary == run.summary and files(out) == before
    assert all(again.table(name).equals(run.table(name)) for name in run.TABLES)
    if study == "density":
        assert (again.computed, again.skipped) == (0, len(sweep.cells(runners.resolve(SweepConfig, tiny(study)))))
    elif study != "geometry":
        assert lines == [ALREADY_FINISHED]


@pytest.mark.parametrize("study", STUDIES)
@pytest.mark.parametrize("bad, message", [
    ({"nonsense": 1}, "unknown config key 'nonsense'"),
    ({"train": {"steps": -1}}, "steps"),
])
def test_bad_config_is_an_input_error_before_anything_is_written(study, bad, message, tmp_path):
    config = {**tiny(study), **bad}
    with pytest.raises(InputError, match=message):
        runners.RUNNERS[study](config, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_config_of_another_study_is_refused(tmp_path):
    with pytest.raises(ParamError, match="`config` must be a InducingConfig"):
        runners.run_inducing(SimulateConfig(), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"workers": 0}, "workers must be >= 1"),
    ({"ray_address": "nowhere"}, "`ray_address` must be auto, ray://HOST:PORT or HOST:PORT"),
    ({"ray_address": "127.0.0.1:1"}, "could not join the Ray cluster at `ray_address` 127.0.0.1:1"),
])
def test_density_checks_workers_and_the_ray_address_before_writing(kwargs, message, tmp_path):
    with pytest.raises(InputError, match=message):
        runners.run_density(tiny("density"), tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_a_different_config_in_the_run_directory_is_refused_and_nothing_changes(tmp_path):
    out = tmp_path / "geometry"
    runners.run_geometry(tiny("geometry"), out, log=lambda line: None)
    before = files(out)
    with pytest.raises(InputError, match="holds a run with a different config"):
        runners.run_geometry({**tiny("geometry"), "target": 2}, out)
    assert files(out) == before


def test_run_figures_checks_every_config_first(tmp_path):
    configs = {study: tiny(study) for study in STUDIES}
    configs["geometry"] = {**configs["geometry"], "target": 99}  # the last study: the others must not run first
    with pytest.raises(InputError, match="target 99"):
        runners.run_figures(configs, tmp_path / "figures", tmp_path / "runs")
    with pytest.raises(ParamError, match="`configs` has no study 'nope'"):
        runners.run_figures({"nope": {}}, tmp_path / "figures", tmp_path / "runs")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_run_figures_runs_every_study_and_copies_its_figures(tmp_path):
    started, done = [], []
    result = runners.run_figures({study: tiny(study) for study in STUDIES}, tmp_path / "figures", tmp_path / "runs",
                                 log=lambda line: None, on_start=started.append,
                                 on_done=lambda study, run: done.append((study, run.path)))
    assert started == list(STUDIES) and done == [(s, tmp_path / "runs" / s) for s in STUDIES]
    assert sorted(p.name for p in result.written) == sorted(f"{n}.{e}" for n in runners.FIGURES for e in ("png", "svg"))
    for name, (study, stem) in runners.FIGURES.items():
        assert (tmp_path / "figures" / f"{name}.png").read_bytes() == (tmp_path / "runs" / study / f"{stem}.png").read_bytes()
    assert set(result.timings) == set(STUDIES) and set(result.runs) == set(STUDIES)
