"""What the user sees when the OS or the run directory says no, and how fast: a read-only filesystem, no
permission, --out below a regular file, a full disk, a damaged trained_model.pt or summary.json, Ctrl-C —
each one line naming the path (the directory, never a temp file) and what to do, exit 2, nothing
half-written; a bad flag fails before torch is imported; --help shows the config's defaults.

Running as root, chmod cannot make a directory unwritable, so the filesystem's refusals are injected where the
OS raises them (os.mkdir, tempfile.mkstemp, a write inside torch.save) with the real OSError types and errnos,
and go through the real code path from there."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

import toysuper.runners
import toysuper.runs
from cli.toysuper_app import main
from tests.helpers import TINY_SIMULATE_ARGS, assert_one_line_error, run_cli
from toysuper.config import SimulateConfig
from toysuper.em.config import InducingConfig, MitigateConfig, SweepConfig

ROOT = Path(__file__).resolve().parents[2]


def _simulate(out: Path, capsys, *extra) -> tuple[int, str, str]:
    return run_cli(main, ["simulate", *TINY_SIMULATE_ARGS, *extra, "--out", out], capsys)


def _refuse_below(monkeypatch, root: Path, code: int) -> None:
    """Every directory or file created below ``root`` fails with ``code``, as the OS reports it."""
    real_mkdir, real_mkstemp = os.mkdir, tempfile.mkstemp

    def below(path) -> bool:
        return Path(path).resolve().is_relative_to(root.resolve())

    def mkdir(path, mode=0o777, **kwargs):
        if below(path):
            raise OSError(code, os.strerror(code), os.fsdecode(path))
        return real_mkdir(path, mode, **kwargs)

    def mkstemp(suffix=None, prefix=None, dir=None, text=False):
        if dir is not None and below(dir):
            raise OSError(code, os.strerror(code), os.path.join(dir, f"{prefix}q8w7e6{suffix}"))
        return real_mkstemp(suffix, prefix, dir, text)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def test_read_only_filesystem_new_out(tmp_path, capsys, monkeypatch):
    mount = tmp_path / "ro"
    mount.mkdir()
    _refuse_below(monkeypatch, mount, errno.EROFS)
    code, _, err = _simulate(mount / "run", capsys)
    assert_one_line_error(code, err)
    assert f"{mount / 'run'}: the filesystem is read-only; choose an --out on a writable filesystem" in err
    assert list(mount.iterdir()) == []


@pytest.mark.parametrize("code, says", [(errno.EROFS, "the filesystem is read-only"),
                                         (errno.EACCES, "permission denied")])
def test_unwritable_existing_out_names_the_directory_not_the_temp_file(code, says, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    _refuse_below(monkeypatch, out, code)
    exit_code, _, err = _simulate(out, capsys)
    assert_one_line_error(exit_code, err)
    assert f"{out}: {says}" in err and "q8w7e6" not in err and ".config.json." not in err
    assert list(out.iterdir()) == []


def test_out_below_a_regular_file(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    code, _, err = _simulate(tmp_path / "notes.txt" / "run", capsys)
    assert_one_line_error(code, err)
    assert "notes.txt is a file, not a directory" in err


def test_full_disk_while_saving_the_model_then_resume(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    real_save = torch.save

    def save_until_full(payload, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 first bytes of the archive")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # the next write() finds the disk full

    monkeypatch.setattr(torch, "save", save_until_full)
    code, _, err = _simulate(out, capsys)
    assert_one_line_error(code, err)
    assert f"{out}: no space left on the device" in err and "rerun with the same --out" in err
    assert sorted(p.name for p in out.iterdir()) == ["config.json"], "no trained_model.pt, no temp file"
    monkeypatch.setattr(torch, "save", real_save)  # space freed
    assert _simulate(out, capsys)[0] == 0
    assert (out / "summary.json").is_file()


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_trained_model(damage, tmp_path, capsys):
    out = tmp_path / "run"
    assert _simulate(out, capsys)[0] == 0
    model = out / "trained_model.pt"
    data = model.read_bytes()
    model.write_bytes(b"not a torch file" if damage == "garbage" else data[: len(data) // 2])
    (out / "summary.json").unlink()
    code, _, err = _simulate(out, capsys)
    assert_one_line_error(code, err)
    assert f"{model} is damaged" in err and "delete it and rerun with the same --out to retrain" in err


def test_damaged_summary_json(tmp_path, capsys):
    out = tmp_path / "run"
    assert _simulate(out, capsys)[0] == 0
    (out / "summary.json").write_text('{"agreement_preactivation": {')
    code, _, err = _simulate(out, capsys)
    assert_one_line_error(code, err)
    assert f"{out / 'summary.json'} is damaged" in err and "delete it" in err


def _interrupt(*_, **__):
    raise KeyboardInterrupt


def test_ctrl_c_before_anything_is_saved_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(toysuper.runs, "train", _interrupt)
    code, _, err = _simulate(tmp_path / "run", capsys)
    assert_one_line_error(code, err)
    assert "nothing to resume" in err and "saved" not in err.replace("before any result was saved", "")


def test_ctrl_c_after_training_names_the_saved_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(toysuper.runners, "simulate", _interrupt)
    out = tmp_path / "run"
    code, _, err = _simulate(out, capsys)
    assert_one_line_error(code, err)
    assert f"finished work is saved in {out}" in err and (out / "trained_model.pt").is_file()


@pytest.mark.parametrize("args", [["simulate", "--features", "-1"], ["inducing", "--harmful", "0,99"],
                                  ["mitigate", "--fraction", "2"], ["density", "--workers", "0"], ["density", "--workers", "5000"],
                                  ["geometry", "--target", "0"], ["simulate", "--threads", "0"],
                                  ["density", "--ray-address", "nowhere"], ["density", "--ray-address", "ray://x"]])
def test_a_bad_flag_fails_before_torch_is_imported(args, tmp_path):
    code = ("import sys\nfrom cli.toysuper_app import main\nsys.argv = ['toysuper', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    print(exc.code, sorted({'torch', 'pandas', "
            "'matplotlib', 'scipy', 'ray'} & set(sys.modules)))\n")
    result = subprocess.run([sys.executable, "-c", code, *args, "--out", str(tmp_path / "r")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "2 []", result.stdout + result.stderr
    assert result.stderr.startswith("error:")
    assert not (tmp_path / "r").exists(), "a run directory was written for bad input"


def test_figures_checks_the_ray_address_before_any_work(tmp_path, capsys):
    code, _, err = run_cli(main, ["figures", "--ray-address", "ray:/head:1", "--runs", tmp_path / "runs",
                                  "--out-dir", tmp_path / "figures"], capsys)
    assert_one_line_error(code, err)
    assert "--ray-address must be auto, ray://HOST:PORT or HOST:PORT" in err and not list(tmp_path.iterdir())


def _help_entries(command: str, capsys) -> dict[str, str]:
    """--option -> its help text (wrapped lines joined) from ``toysuper <command> --help``."""
    code, out, _ = run_cli(main, [command, "--help"], capsys)
    assert code == 0
    entries: dict[str, str] = {}
    for line in out.splitlines():
        body = line.strip("│ ")
        if body.startswith("--"):
            option = body.split()[0]
            entries[option] = body
        elif entries and body and not line.startswith("╰"):
            entries[option] += " " + body
    return entries


@pytest.mark.parametrize("command, option, default", [
    ("simulate", "--features", SimulateConfig().model.n_features),
    ("simulate", "--ft-lr", SimulateConfig().finetune.lr),
    ("simulate", "--lr-schedule", SimulateConfig().train.lr_schedule),
    ("inducing", "--features", InducingConfig().model.n_features),
    ("inducing", "--harmful", ",".join(map(str, InducingConfig().harmful.features))),
    ("mitigate", "--fraction", MitigateConfig().mitigation.fraction),
    ("density", "--workers", SweepConfig().workers),
    ("figures", "--workers", SweepConfig().workers),
    ("figures", "--out-dir", "figures"),
])
def test_help_shows_the_configs_defaults(command, option, default, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert f"[default: {default}]" in _help_entries(command, capsys)[option]


@pytest.mark.parametrize("command", ["simulate", "inducing", "mitigate", "density"])
def test_every_override_shows_a_default(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    entries = _help_entries(command, capsys)
    missing = [o for o, text in entries.items() if "[default:" not in text and o not in ("--config", "--out", "--help")]
    assert len(entries) > 5 and not missing, missing
