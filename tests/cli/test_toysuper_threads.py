"""``--threads`` (cli.threads) on every toysuper command: default 1 (the app no longer sets 2 threads itself),
validated, and without effect on any output byte."""

from __future__ import annotations

import pytest
import torch

from cli.threads import set_threads
from cli.toysuper_app import main
from tests.helpers import TINY_SIMULATE_ARGS, assert_one_line_error, run_cli, snapshot
from theory.errors import InputError

COMMANDS = ("simulate", "inducing", "mitigate", "density", "geometry", "figures")


@pytest.fixture(autouse=True)
def _one_thread_after():
    yield
    torch.set_num_threads(1)  # the suite's setting (tests/conftest.py)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_the_threads_option_with_default_1(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run_cli(main, [command, "--help"], capsys)
    assert code == 0
    line = next(line for line in out.splitlines() if "--threads" in line)
    assert "measured" in out and "[default: 1]" in out, line


def test_threads_1_and_2_give_byte_identical_outputs(tmp_path, capsys):
    runs = {}
    for threads in (1, 2):
        out = tmp_path / f"t{threads}"
        code, _, err = run_cli(main, ["simulate", *TINY_SIMULATE_ARGS, "--threads", threads, "--out", out], capsys)
        assert code == 0, err
        assert torch.get_num_threads() == threads
        runs[threads] = snapshot(out)
    assert runs[1].keys() == runs[2].keys() and "trained_model.pt" in runs[1]
    for name in runs[1]:
        assert runs[1][name] == runs[2][name], name


def test_the_default_is_one_thread_not_two(tmp_path, capsys):
    torch.set_num_threads(2)
    code, _, err = run_cli(main, ["simulate", *TINY_SIMULATE_ARGS, "--out", tmp_path / "run"], capsys)
    assert code == 0, err
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("command", ["simulate", "inducing", "figures"])
def test_threads_below_1_is_one_line_and_no_run_directory(command, tmp_path, capsys):
    out = tmp_path / "run"
    target = ["--out-dir", out, "--runs", out] if command == "figures" else ["--out", out]
    code, _, err = run_cli(main, [command, "--threads", "0", *target], capsys)
    assert_one_line_error(code, err)
    assert "--threads must be an integer >= 1, got 0" in err and not out.exists()


@pytest.mark.parametrize("bad", [0, -2, True, 1.5])
def test_set_threads_validates(bad):
    with pytest.raises(InputError, match="`threads`"):
        set_threads(bad)
