"""runio.rundir: --out below a regular file, a failed start (read-only filesystem) leaving nothing behind, a
damaged config.json, and the finished files a Ctrl-C message may claim."""

from __future__ import annotations

import errno
import os
import tempfile

import pytest

from runio.atomic import write_text
from runio.rundir import RunDir
from theory.errors import InputError


def test_out_below_a_regular_file_is_an_input_error(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="notes.txt is a file, not a directory"):
        RunDir.open(tmp_path / "notes.txt" / "run", {"a": 1})
    with pytest.raises(InputError, match="exists and is not a directory"):
        RunDir.open(tmp_path / "notes.txt", {"a": 1})


def test_a_failed_start_removes_the_directory_it_created(tmp_path, monkeypatch):
    def read_only(prefix="", suffix="", dir=None, **_):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.path.join(dir, f"{prefix}abc{suffix}"))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(OSError) as info:
        RunDir.open(tmp_path / "run", {"a": 1})
    assert info.value.errno == errno.EROFS and info.value.filename == str(tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_reopening_a_run_does_not_rewrite_its_config(tmp_path, monkeypatch):
    RunDir.open(tmp_path / "run", {"a": 1})
    monkeypatch.setattr(tempfile, "mkstemp", lambda **_: pytest.fail("config.json rewritten"))
    assert RunDir.open(tmp_path / "run", {"a": 1}).config == {"a": 1}


def test_damaged_config_json_says_to_choose_another_out(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="config.json is damaged.*choose another `out`"):
        RunDir.open(tmp_path / "run", {"a": 1})


def test_finished_files_skip_the_config_and_temp_files(tmp_path):
    run = RunDir.open(tmp_path / "run", {"a": 1})
    assert run.finished_files() == [] and run in RunDir.opened
    (run.path / ".summary.json.x1y2.json").write_text("partial")
    assert run.finished_files() == []
    write_text(run.file("cells") / "c.json", "{}")
    assert run.finished_files() == [run.file("cells") / "c.json"]
