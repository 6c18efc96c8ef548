"""The execution layer (cli.jobs) on a local Ray with 2 CPUs: a sweep killed mid-way (driver and Ray, SIGKILL)
and rerun equals an uninterrupted run and recomputes nothing finished; a job that raises is one line naming it,
the job already running finishes and keeps its result; 1 and 2 workers give byte-identical files; no Ray process
outlives a run. Plus the option checks and the in-process path (no Ray)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.errors import user_errors
from cli.jobs import JobError, check_address, check_workers, resumable_map
from tests.helpers import assert_one_line_error, kill_tree, ray_processes, wait_for_no_new_ray_processes
from theory.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
JOBS = [(f"job{i}", i) for i in range(8)]


def _log(name: str) -> None:
    """One line per computation started, in $JOBS_TEST_LOG (appends of one short line are atomic)."""
    with open(os.environ["JOBS_TEST_LOG"], "a") as handle:
        handle.write(name + "\n")


def seeded_job(i: int) -> dict:
    """A deterministic torch computation (its result must not depend on where it ran) that takes a while."""
    import torch

    _log(f"job{i}")
    time.sleep(float(os.environ.get("JOBS_TEST_SLEEP", "0")))
    generator = torch.Generator().manual_seed(i)
    x = torch.randn(64, 64, generator=generator)
    return {"i": i, "value": float((x @ x.T).sum()), "threads": torch.get_num_threads()}


def failing_job(name: str) -> dict:
    """"bad" raises; "slow" (the first job: the driver's own thread takes it) runs until "bad" has raised."""
    _log(name)
    raised = Path(os.environ["JOBS_TEST_LOG"] + ".bad")
    if name == "bad":
        raised.touch()
        raise ValueError("boom\nand a second line")
    if name == "slow":
        deadline = time.monotonic() + 60
        while not raised.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # the driver has seen the failure by now
    return {"name": name}


def _files(directory: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(directory.glob("[!.]*.json"))}


@pytest.fixture
def log(tmp_path, monkeypatch):
    path = tmp_path / "computed.log"
    monkeypatch.setenv("JOBS_TEST_LOG", str(path))
    return lambda: path.read_text().split() if path.exists() else []


def test_options_are_checked_without_ray():
    for good in (None, "auto", "ray://head:10001", "10.0.0.1:6379", "head-node.cluster:6379"):
        check_address(good)
    for bad in ("", "ray://", "http://head:80", "head", "ray://head", "a b:1"):
        with pytest.raises(InputError, match="--ray-address"):
            check_address(bad)
    for bad in (0, -1, True, 1.5):
        with pytest.raises(InputError, match="--workers"):
            check_workers(bad)


def test_in_process_one_thread_and_failure_names_the_job(tmp_path, log):
    report = resumable_map([("x", 3)], seeded_job, tmp_path, workers=2)  # one job left: no Ray needed
    assert report.results["x"]["threads"] == 1 and report.computed == 1
    with pytest.raises(JobError, match="^job bad failed: ValueError: boom \\(traceback: ") as failed:
        resumable_map([("a", "a"), ("bad", "bad"), ("c", "c")], failing_job, tmp_path)
    assert "\n" not in str(failed.value) and "and a second line" in (tmp_path / "bad.error.txt").read_text()
    assert log() == ["job3", "a", "bad"] and (tmp_path / "a.json").exists() and not (tmp_path / "c.json").exists()


@pytest.mark.slow
@pytest.mark.ray
def test_ray_sweep_killed_midway_resumes_and_equals_one_worker(tmp_path, log, monkeypatch):
    ray_before = ray_processes()
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    script = ("import sys\nfrom cli.jobs import resumable_map\nfrom tests.cli.test_jobs import JOBS, seeded_job\n"
              "resumable_map(JOBS, seeded_job, sys.argv[1], workers=2)\n")
    env = {**os.environ, "JOBS_TEST_SLEEP": "0.5", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", script, str(killed)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not killed.is_dir() or len(_files(killed)) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no result written in time"
            time.sleep(0.01)
    finally:
        kill_tree(proc.pid)
        proc.wait()
    assert not wait_for_no_new_ray_processes(ray_before), "Ray processes outlived the killed run"
    before = _files(killed)
    assert 2 <= len(before) < len(JOBS), "the kill must land mid-sweep"
    started = len(log())

    report = resumable_map(JOBS, seeded_job, killed, workers=2)  # the rest on a local Ray, in this process
    assert (report.computed, report.skipped) == (len(JOBS) - len(before), len(before))
    assert sorted(log()[started:]) == sorted(f"job{i}" for i in range(8) if f"job{i}.json" not in before), \
        "the rerun computed exactly the unfinished jobs, each once"
    after = _files(killed)
    assert all(after[name] == before[name] for name in before), "a finished result was rewritten"
    assert not list(killed.glob(".*")), "stale temp files are removed"
    assert not wait_for_no_new_ray_processes(ray_before), "Ray processes outlived the run"

    monkeypatch.setenv("JOBS_TEST_SLEEP", "0")
    one = resumable_map(JOBS, seeded_job, clean, workers=1)
    assert {k: v[1] for k, v in _files(clean).items()} == {k: v[1] for k, v in after.items()}
    assert one.results == report.results and all(r["threads"] == 1 for r in one.results.values())


@pytest.mark.slow
@pytest.mark.ray
def test_ray_worker_that_raises_is_one_line_and_the_others_stay(tmp_path, log, capsys):
    ray_before = ray_processes()
    jobs = [("slow", "slow"), ("bad", "bad"), ("c", "c"), ("d", "d")]
    code = 0
    try:
        user_errors(resumable_map)(jobs, failing_job, tmp_path, workers=2)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert_one_line_error(code, err)
    assert "job bad failed: ValueError: boom (traceback: " in err.replace("\n", " "), err
    assert json.loads((tmp_path / "slow.json").read_text()) == {"name": "slow"}, "the running job finished"
    assert sorted(log()) == ["bad", "slow"], "no job started after the failure"
    assert "and a second line" in (tmp_path / "bad.error.txt").read_text()
    assert not wait_for_no_new_ray_processes(ray_before), "Ray processes outlived the failed run"

    jobs[1] = ("bad", "fixed")
    report = resumable_map(jobs, failing_job, tmp_path, workers=1)
    assert (report.computed, report.skipped) == (3, 1) and not (tmp_path / "bad.error.txt").exists()
