"""How the CLI meets the execution layer (runio.jobs): its checks are the library's, whose messages name the
parameters (``workers``, ``ray_address``, ``threads``, ``num_gpus_per_worker``), rendered by ``user_errors`` as the
flags (``--workers``, ``--ray-address``, ``--threads``, ``--num-gpus-per-worker``); a job that raised bad input (an
InputError) or an OS error is one ``error:`` line, exit 2; a job with a bug ends the command with a traceback (the
job's own traceback included) and exit 1, naming the job and its traceback file — through ``user_errors`` and
through a real ``toysuper density`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.errors import user_errors
from cli.jobs_options import check_gpus, check_reachable, check_workers
from cli.threads import check_threads
from runio.jobs import JobError, resumable_map
from tests.helpers import assert_one_line_error
from tests.toysuper.em.test_sweep import TINY_SWEEP
from theory.errors import InputError, ParamError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("check, value, param, line", [
    (check_workers, 0, "workers", "--workers must be an integer >= 1, got 0"),
    (check_reachable, "head", "ray_address", "--ray-address must be auto, ray://HOST:PORT or HOST:PORT, got 'head'"),
    (check_reachable, "head:0", "ray_address", "--ray-address head:0: the port must be in 1..65535"),
    (check_threads, 0, "threads", "--threads must be an integer >= 1, got 0 (at most 1024)"),
    (check_gpus, -1, "num_gpus_per_worker", "--num-gpus-per-worker must be a number >= 0, got -1"),
])
def test_the_cli_checks_name_the_parameters_and_the_cli_renders_the_flags(capsys, check, value, param, line):
    with pytest.raises(ParamError) as raised:
        check(value)
    assert raised.value.params == [param]
    with pytest.raises(SystemExit) as exited:
        user_errors(check)(value)
    err = capsys.readouterr().err
    assert_one_line_error(exited.value.code, err)
    assert err.strip() == f"error: {line}"


def raising_job(kind: str) -> dict:
    """Raises what ``kind`` names: "input" an InputError, "os" an OSError about a path, "bug" a ZeroDivisionError."""
    if kind == "input":
        raise InputError("the dataset has no rows")
    if kind == "os":
        raise PermissionError(13, "Permission denied", "/data/x.jsonl")
    return {"value": 1 / 0}


@pytest.mark.parametrize("kind, message", [("input", "job j failed: the dataset has no rows (traceback: "),
                                           ("os", "job j failed: PermissionError: [Errno 13] Permission denied")])
def test_a_job_that_raised_bad_input_is_one_line_exit_2(tmp_path, capsys, kind, message):
    code = 0
    try:
        user_errors(resumable_map)([("j", kind)], raising_job, tmp_path)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert_one_line_error(code, err)
    assert message in err.replace("\n", " ") and "j.error.txt" in err.replace("\n", ""), err


def test_a_job_with_a_bug_raises_through_user_errors(tmp_path):
    with pytest.raises(JobError, match="^job j failed: ZeroDivisionError: division by zero") as failed:
        user_errors(resumable_map)([("j", "bug")], raising_job, tmp_path)
    assert failed.value.kind == "bug" and failed.value.error_file == tmp_path / "j.error.txt"
    assert "1 / 0" in failed.value.__notes__[0], "the job's traceback travels with the error"


def _density_with(tmp_path: Path, kind: str) -> subprocess.CompletedProcess:
    """``toysuper density`` (tiny grid, one worker) in a subprocess whose cells all raise what ``kind`` names."""
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_SWEEP)
    script = ("import sys\nimport toysuper.em.sweep\nfrom tests.cli.test_jobs import raising_job\n"
              f"toysuper.em.sweep.run_cell = lambda cell: raising_job({kind!r})\n"
              "from cli.toysuper_app import main\n"
              f"sys.argv = ['toysuper', 'density', '--config', {str(config)!r}, '--out', {str(tmp_path / 'out')!r}, "
              "'--workers', '1']\nmain()\n")
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=300)


def test_density_with_a_buggy_cell_is_a_traceback_exit_1(tmp_path):
    done = _density_with(tmp_path, "bug")
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback (most recent call last)" in done.stderr and "runio.jobs.JobError: job " in done.stderr
    assert "failed: ZeroDivisionError: division by zero (traceback: " in done.stderr
    assert "in raising_job" in done.stderr, "the job's own traceback is shown (a note of the JobError)"
    assert "error:" not in done.stderr, "a bug is not rendered as a user error"
    assert len(list((tmp_path / "out" / "cells").glob("*.error.txt"))) == 1


def test_density_with_a_cell_that_finds_bad_input_is_one_line_exit_2(tmp_path):
    done = _density_with(tmp_path, "input")
    assert_one_line_error(done.returncode, done.stderr)
    assert "failed: the dataset has no rows (traceback: " in done.stderr.replace("\n", " "), done.stderr
