"""runio.atomic: OS errors of a write name the destination's directory (never the temp file) and leave nothing
behind; JSON is strict (NaN refused, nan_to_none for undefined values); a damaged JSON file is an InputError;
torch payloads are byte-reproducible."""

from __future__ import annotations

import errno
import json
import os
import pathlib
import tempfile

import pytest
import torch

from runio import atomic
from runio.atomic import nan_to_none, read_json, save_torch, write_json, write_text
from theory.errors import InputError


def _real_mkstemp_error(code: int):
    """A mkstemp that fails the way the OS does: the OSError names the temp file it tried to create."""
    def mkstemp(prefix="", suffix="", dir=None, **_):
        raise OSError(code, os.strerror(code), os.path.join(dir, f"{prefix}k3j2x9{suffix}"))

    return mkstemp


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS])
def test_unwritable_directory_names_the_directory_not_the_temp_file(tmp_path, monkeypatch, code):
    monkeypatch.setattr(tempfile, "mkstemp", _real_mkstemp_error(code))
    with pytest.raises(OSError) as info:
        write_text(tmp_path / "summary.json", "{}")
    assert info.value.errno == code and info.value.filename == str(tmp_path)
    assert isinstance(info.value, PermissionError) == (code == errno.EACCES)  # the errno's own subclass
    assert list(tmp_path.iterdir()) == []


def test_full_disk_mid_write_leaves_no_file_and_names_the_directory(tmp_path, monkeypatch):
    real_write_text = pathlib.Path.write_text

    def half_then_full(self, text, *args, **kwargs):  # write() fails part-way, as on a full disk
        real_write_text(self, text[: len(text) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pathlib.Path, "write_text", half_then_full)
    with pytest.raises(OSError) as info:
        write_json(tmp_path / "summary.json", {"a": list(range(100))})
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path)
    assert list(tmp_path.iterdir()) == [], "no half-written file, no temp file"


def test_an_error_about_another_file_passes_unchanged(tmp_path):
    missing = tmp_path / "missing.png"
    with pytest.raises(FileNotFoundError) as info, atomic.atomic_path(tmp_path / "copy.png") as tmp:
        import shutil

        shutil.copyfile(missing, tmp)
    assert info.value.filename == str(missing)
    assert list(tmp_path.iterdir()) == []


def test_write_json_refuses_nan_and_nan_to_none_writes_null(tmp_path):
    with pytest.raises(ValueError):
        write_json(tmp_path / "a.json", {"r2": float("nan")})
    with pytest.raises(ValueError):
        write_json(tmp_path / "a.json", [float("inf")])
    assert not (tmp_path / "a.json").exists()
    data = {"r2": float("nan"), "ci": (1.0, float("-inf")), "deep": [{"x": float("nan"), "n": 3}], "ok": 0.5}
    write_json(tmp_path / "a.json", nan_to_none(data))
    text = (tmp_path / "a.json").read_text()
    assert json.loads(text) == {"r2": None, "ci": [1.0, None], "deep": [{"x": None, "n": 3}], "ok": 0.5}


@pytest.mark.parametrize("content", [b'{"a": 1', b"\xff\xfe garbage", b""])
def test_read_json_of_a_damaged_file_is_one_input_error_naming_it(tmp_path, content):
    path = tmp_path / "summary.json"
    path.write_bytes(content)
    with pytest.raises(InputError, match="summary.json is damaged"):
        read_json(path)


def test_save_torch_same_payload_same_bytes(tmp_path):
    """The archive's records must not carry the random temp-file name (torch.save through a file object)."""
    payload = {"model": {"W": torch.arange(12.0).reshape(3, 4)}, "loss_history": [[0.5, 0.25]]}
    save_torch(tmp_path / "a" / "trained_model.pt", payload)
    save_torch(tmp_path / "b" / "trained_model.pt", payload)
    assert (tmp_path / "a" / "trained_model.pt").read_bytes() == (tmp_path / "b" / "trained_model.pt").read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["trained_model.pt"]


def test_copy_figures_copies_both_formats_under_the_prefix_or_nothing(tmp_path):
    from pathlib import Path

    from runio.atomic import copy_figures

    stem = tmp_path / "run" / "amplification"
    stem.parent.mkdir()
    for fmt, data in (("png", b"png-bytes"), ("svg", b"<svg/>")):
        Path(f"{stem}.{fmt}").write_bytes(data)
    assert copy_figures({"amp": stem}, None, "toy") == [Path(f"{stem}.png")]
    assert copy_figures({"amp": stem}, tmp_path / "figures", "toy") == [Path(f"{stem}.png")]
    assert {p.name: p.read_bytes() for p in (tmp_path / "figures").iterdir()} == {
        "toy_amp.png": b"png-bytes", "toy_amp.svg": b"<svg/>"}
