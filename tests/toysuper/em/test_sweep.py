"""The density sweep (toysuper.em.sweep) and its resumable runner (runio.jobs, in process here): grid, skipping of
finished cells, and resume after the whole process group (driver + Ray) is killed mid-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from runio.jobs import JobError, resumable_map
from cli.toysuper_app import main
from tests.helpers import kill_tree, ray_processes, run_cli, wait_for_no_new_ray_processes
from theory.errors import InputError
from toysuper.em.sweep import SweepConfig, cells

TOYSUPER = Path(sys.executable).parent / "toysuper"

TINY_SWEEP = """
n_hidden = 2
ratios = [1, 2, 4]
probabilities = [0.2, 0.05]
n_instances = 2
max_tasks = 3
workers = 1
n_bootstrap = 20

[train]
steps = 400
batch_size = 128

[harmful]
features = [0]

[task]
n_samples = 32
n_heldout = 8
n_probe = 256
context_size = 1
"""


def test_grid_and_validation():
    config = SweepConfig(ratios=(1, 4), probabilities=(0.1, 0.01))
    grid = cells(config)
    assert [(c.ratio, c.probability) for c in grid] == [(1, 0.1), (1, 0.01), (4, 0.1), (4, 0.01)]
    assert len({c.key for c in grid}) == 4 and grid[2].n_features == 4 * config.n_hidden
    assert grid[0].task_config().context_size == min(config.task.context_size, 5 - 2 - 1)
    for bad in ({"ratios": ()}, {"ratios": (0,)}, {"probabilities": (0.0,)}, {"probabilities": (0.1, 0.1)},
                {"workers": 0}, {"n_instances": 1}):
        with pytest.raises(InputError):
            SweepConfig(**bad)


_CALLS: list[str] = []


def _record(arg: str) -> dict:
    _CALLS.append(arg)
    return {"value": arg.upper()}


def test_resumable_map_skips_finished_jobs(tmp_path):
    _CALLS.clear()
    (tmp_path / "b.json").write_text(json.dumps({"value": "precomputed"}))
    report = resumable_map([("a", "a"), ("b", "b"), ("c", "c")], _record, tmp_path, workers=1)
    assert _CALLS == ["a", "c"] and (report.computed, report.skipped) == (2, 1)
    assert report.results == {"a": {"value": "A"}, "b": {"value": "precomputed"}, "c": {"value": "C"}}
    again = resumable_map([("a", "a"), ("b", "b"), ("c", "c")], _record, tmp_path, workers=1)
    assert _CALLS == ["a", "c"] and again.computed == 0 and again.results == report.results


def _cells(directory: Path) -> dict[str, tuple[int, bytes]]:
    """Finished cells (hidden files are temp files of unfinished writes); {} before the directory exists."""
    if not directory.is_dir():
        return {}
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(directory.glob("[!.]*.json"))}


class _Interrupt(Exception):
    pass


def _record_then_stop(arg: str) -> dict:
    if arg == "stop":
        (Path(os.environ["RESUME_TEST_DIR"]) / ".stop.json.tmp123.json").write_text("{half")  # a torn temp file
        raise _Interrupt
    return _record(arg)


def test_resumable_map_after_an_interruption(tmp_path, monkeypatch):
    """A job that raises mid-run keeps the finished jobs (and is one error naming it); the rerun computes only
    the rest and removes the torn temp file of the interrupted job."""
    _CALLS.clear()
    monkeypatch.setenv("RESUME_TEST_DIR", str(tmp_path))
    jobs = [("a", "a"), ("stop", "stop"), ("c", "c")]
    with pytest.raises(JobError, match="^job stop failed: _Interrupt") as failed:
        resumable_map(jobs, _record_then_stop, tmp_path, workers=1)
    assert "\n" not in str(failed.value) and "_Interrupt" in (tmp_path / "stop.error.txt").read_text()
    assert _CALLS == ["a"] and (tmp_path / "a.json").exists() and not (tmp_path / "stop.json").exists()
    mtime = (tmp_path / "a.json").stat().st_mtime_ns
    report = resumable_map([("a", "a"), ("stop", "b"), ("c", "c")], _record, tmp_path, workers=1)
    assert _CALLS == ["a", "b", "c"] and (report.computed, report.skipped) == (2, 1)
    assert (tmp_path / "a.json").stat().st_mtime_ns == mtime
    assert not list(tmp_path.glob(".stop.json.*"))


@pytest.mark.slow
@pytest.mark.ray
def test_density_resumes_after_kill_without_losing_or_recomputing(tmp_path, capsys):
    """Kill the whole process tree (driver + its local Ray) once a cell is written; rerun: the finished cells
    keep their files (same mtime), only the rest are computed, and the result equals an uninterrupted run; no Ray
    process outlives the killed run or the reruns."""
    ray_before = ray_processes()
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_SWEEP)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    proc = subprocess.Popen([str(TOYSUPER), "density", "--config", str(config), "--out", str(killed), "--workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not _cells(killed / "cells"):
            assert proc.poll() is None, "the sweep ended before any cell was seen"
            assert time.monotonic() < deadline, "no cell written in time"
            time.sleep(0.01)
    finally:
        kill_tree(proc.pid)
        proc.wait()
    assert not wait_for_no_new_ray_processes(ray_before), "Ray processes outlived the killed run"
    before = _cells(killed / "cells")
    assert 1 <= len(before) < 6, "kill must land mid-sweep"
    assert not (killed / "density.csv").exists()

    code, stdout, err = run_cli(main, ["density", "--config", config, "--out", killed], capsys)
    assert code == 0, err
    assert f"{6 - len(before)} computed, {len(before)} already finished" in stdout, (sorted(before), stdout)
    after = _cells(killed / "cells")
    assert len(after) == 6
    for name, (mtime, content) in before.items():
        assert after[name] == (mtime, content), f"{name} was recomputed"

    code, stdout, err = run_cli(main, ["density", "--config", config, "--out", clean], capsys)
    assert code == 0, err
    assert "6 computed, 0 already finished" in stdout
    assert {k: v[1] for k, v in after.items()} == {k: v[1] for k, v in _cells(clean / "cells").items()}
    pd.testing.assert_frame_equal(pd.read_csv(killed / "density.csv"), pd.read_csv(clean / "density.csv"))

    code, stdout, err = run_cli(main, ["density", "--config", config, "--out", clean], capsys)  # nothing left
    assert code == 0 and "0 computed, 6 already finished" in stdout
    assert not wait_for_no_new_ray_processes(ray_before)
