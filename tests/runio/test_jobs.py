"""The execution layer (runio.jobs) on a local Ray with 2 CPUs: a sweep killed mid-way (driver and Ray, SIGKILL)
and rerun equals an uninterrupted run and recomputes nothing finished; a job that raises is a JobError naming it
and the kind of what it raised, the job already running finishes and keeps its result; 1 and 2 workers give
byte-identical files; no Ray process outlives a run. Plus the argument checks (naming the parameters) and the
in-process path (no Ray). How the CLI renders a JobError: tests/cli/test_jobs.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runio.jobs import JobError, check_address, check_reachable, check_threads, check_workers, resumable_map
from tests.helpers import kill_tree, ray_processes, wait_for_no_new_ray_processes
from theory.errors import InputError, ParamError

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
    """"bad" raises a ValueError (a bug), "bad-input" an InputError, "bad-path" an OSError; "slow" (the first job: the
    driver's own thread takes it) runs until "bad" has raised."""
    _log(name)
    raised = Path(os.environ["JOBS_TEST_LOG"] + ".bad")
    if name == "bad":
        raised.touch()
        raise ValueError("boom\nand a second line")
    if name == "bad-input":
        raise InputError("the data has no rows\nand a second line")
    if name == "bad-path":
        open(Path(os.environ["JOBS_TEST_LOG"]).parent / "missing" / "file.txt")
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


def test_options_are_checked_without_ray_naming_the_parameters():
    for good in (None, "auto", "ray://head:10001", "10.0.0.1:6379", "head-node.cluster:6379"):
        check_address(good)
    for bad in ("", "ray://", "http://head:80", "head", "ray://head", "a b:1"):
        with pytest.raises(ParamError, match="^`ray_address` must be auto"):
            check_address(bad)
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ParamError, match="^`workers` must be an integer >= 1"):
            check_workers(bad)
    for bad in (0, True, 1.5, 10**30):
        with pytest.raises(ParamError, match="^`threads` must be an integer >= 1"):
            check_threads(bad)
    for bad_call in (dict(workers=0), dict(ray_address="head"), dict(threads=0)):
        with pytest.raises(ParamError, match=f"^`{next(iter(bad_call))}` "):
            resumable_map([("x", 3)], seeded_job, Path("/nonexistent/never"), **bad_call)


def test_in_process_one_thread_and_failure_names_the_job(tmp_path, log):
    report = resumable_map([("x", 3)], seeded_job, tmp_path, workers=2)  # one job left: no Ray needed
    assert report.results["x"]["threads"] == 1 and report.computed == 1
    with pytest.raises(JobError, match="^job bad failed: ValueError: boom \\(traceback: ") as failed:
        resumable_map([("a", "a"), ("bad", "bad"), ("c", "c")], failing_job, tmp_path)
    assert "\n" not in str(failed.value) and "and a second line" in (tmp_path / "bad.error.txt").read_text()
    assert log() == ["job3", "a", "bad"] and (tmp_path / "a.json").exists() and not (tmp_path / "c.json").exists()
    assert not isinstance(failed.value, InputError) and failed.value.kind == "bug" and failed.value.name == "bad"
    assert failed.value.error_file == tmp_path / "bad.error.txt"
    assert "and a second line" in failed.value.__notes__[0], "the job's traceback is a note of the JobError"


@pytest.mark.parametrize("name, kind, message", [
    ("bad", "bug", "ValueError: boom"),
    ("bad-input", "input", "the data has no rows"),  # an InputError's own message, no type prefix
    ("bad-path", "os", "FileNotFoundError: [Errno 2] No such file or directory"),
])
def test_a_job_error_carries_the_kind_of_what_the_job_raised(tmp_path, log, name, kind, message):
    with pytest.raises(JobError) as failed:
        resumable_map([(name, name)], failing_job, tmp_path / "out")
    assert failed.value.kind == kind and not isinstance(failed.value, InputError)
    assert str(failed.value).startswith(f"job {name} failed: {message}") and "\n" not in str(failed.value)
    assert "Traceback" in (tmp_path / "out" / f"{name}.error.txt").read_text()


@pytest.mark.slow
@pytest.mark.ray
def test_ray_sweep_killed_midway_resumes_and_equals_one_worker(tmp_path, log, monkeypatch):
    ray_before = ray_processes()
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    script = ("import sys\nfrom runio.jobs import resumable_map\nfrom tests.runio.test_jobs import JOBS, seeded_job\n"
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
def test_ray_worker_that_raises_is_a_job_error_and_the_others_stay(tmp_path, log):
    """A bug in a Ray worker's job: a JobError of kind "bug" naming the job (the CLI lets it raise: exit 1)."""
    ray_before = ray_processes()
    jobs = [("slow", "slow"), ("bad", "bad"), ("c", "c"), ("d", "d")]
    with pytest.raises(JobError, match="^job bad failed: ValueError: boom \\(traceback: ") as failed:
        resumable_map(jobs, failing_job, tmp_path, workers=2)
    assert failed.value.kind == "bug" and "and a second line" in failed.value.__notes__[0]
    assert json.loads((tmp_path / "slow.json").read_text()) == {"name": "slow"}, "the running job finished"
    assert sorted(log()) == ["bad", "slow"], "no job started after the failure"
    assert "and a second line" in (tmp_path / "bad.error.txt").read_text()
    assert not wait_for_no_new_ray_processes(ray_before), "Ray processes outlived the failed run"

    jobs[1] = ("bad", "fixed")
    report = resumable_map(jobs, failing_job, tmp_path, workers=1)
    assert (report.computed, report.skipped) == (3, 1) and not (tmp_path / "bad.error.txt").exists()


SECRET = "sk-jobs-SECRET-7777777777"


def leaky_job(name: str) -> dict:
    """Prints, logs and (job "bad") raises with the API key of $JOBS_TEST_API_KEY in the text."""
    import logging

    time.sleep(float(os.environ.get("JOBS_TEST_SLEEP", "0")))
    key = os.environ["JOBS_TEST_API_KEY"]
    print(f"job {name}: server said Authorization: Bearer {key}", flush=True)
    print(f"job {name}: stderr {key}", file=sys.stderr, flush=True)
    logging.getLogger("realmodels.test").warning("retrying with %s", key)
    if name == "bad":
        raise ValueError(f"HTTP 400: you sent {key}")
    return {"name": name, "pid": os.getpid()}


def test_ray_address_port_range_and_reachability():
    import socket

    for bad in ("head:0", "head:99999", "ray://head:65536"):
        with pytest.raises(InputError, match="port must be in 1..65535"):
            check_address(bad)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]  # bound, not listening: refused
    started = time.monotonic()
    with pytest.raises(InputError, match=f"could not join the Ray cluster at `ray_address` 127.0.0.1:{port}"):
        check_reachable(f"127.0.0.1:{port}")
    with pytest.raises(InputError, match="could not join"):
        check_reachable(f"ray://127.0.0.1:{port}")
    sock.close()
    assert time.monotonic() - started < 5
    check_reachable(None)
    check_reachable("auto")


@pytest.mark.ray
def test_joining_a_silent_address_is_bounded(tmp_path, monkeypatch):
    """Something accepts TCP connections but never speaks Ray: ray.init would wait for minutes."""
    import socket

    import runio.jobs

    monkeypatch.setattr(runio.jobs, "CONNECT_TIMEOUT_S", 3.0)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    address = f"127.0.0.1:{listener.getsockname()[1]}"
    started = time.monotonic()
    try:
        with pytest.raises(InputError, match=f"could not join the Ray cluster at `ray_address` {address}"):
            resumable_map(JOBS[:2], seeded_job, tmp_path, workers=2, ray_address=address)
    finally:
        listener.close()
    assert time.monotonic() - started < 20


def test_a_job_error_and_its_traceback_are_redacted(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JOBS_TEST_API_KEY", SECRET)
    from runio.redact import register_secret

    register_secret(SECRET)  # what realmodels.evaluate.endpoints.api_key does when a job reads its key
    with pytest.raises(JobError) as failed:
        resumable_map([("bad", "bad")], leaky_job, tmp_path)
    assert SECRET not in str(failed.value) and "***" in str(failed.value) and SECRET not in failed.value.__notes__[0]
    assert SECRET not in (tmp_path / "bad.error.txt").read_text()


@pytest.mark.slow
@pytest.mark.ray
def test_ray_worker_logs_never_hold_the_key(tmp_path):
    """A local Ray (2 workers): what jobs print or log in Ray workers lands in Ray's session logs, redacted (the
    jobs run by the driver itself print to its own stdout, not checked here: the toolkit's messages are redacted
    where they are built)."""
    ray_before = ray_processes()
    sessions = Path("/tmp/ray")
    before = set(sessions.glob("session_*")) if sessions.is_dir() else set()
    script = ("import sys\nfrom runio.jobs import resumable_map\nfrom tests.runio.test_jobs import leaky_job\n"
              "report = resumable_map([(f'j{i}', f'j{i}') for i in range(6)], leaky_job, sys.argv[1], workers=2)\n"
              "import os\nprint('PIDS', sorted({r['pid'] for r in report.results.values()} - {os.getpid()}))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JOBS_TEST_API_KEY": SECRET, "JOBS_TEST_SLEEP": "3.0"}
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "out")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "PIDS [" in done.stdout and "PIDS []" not in done.stdout, "some jobs ran in Ray workers"
    assert not wait_for_no_new_ray_processes(ray_before)
    new_sessions = [s for s in sessions.glob("session_*") if s not in before and not s.is_symlink()]
    assert new_sessions, "the local Ray wrote a session directory"
    logs = [p for s in new_sessions for p in s.rglob("*") if p.is_file()]
    worker_out = [p for p in logs if p.name.startswith("worker-") and p.suffix in (".out", ".err")]
    assert any(b"server said Authorization: Bearer ***" in p.read_bytes() for p in worker_out), \
        "a Ray worker printed the (redacted) line"
    for path in [*logs, *(tmp_path / "out").rglob("*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
