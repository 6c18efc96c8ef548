"""Property (issue 19 acceptance): every numeric option of ``finetune``, ``evaluate``, ``mitigate`` and ``organism
study``, given any of nan, +inf, -inf, 0, -1, 10**30 or 1e308, either exits 0 with finite outputs or exits 2 with
one line, no traceback and no --out directory.

The options are read from the typer commands themselves (every click option of type int or float), so a new
option cannot escape. Each runs on the embedded organism (the default model) with tiny settings on a small world
of its own; an option that only acts beside another (``--alarm`` needs ``--monitor``) gets that context.

Two tiers: the fast one stops a command where it would open its run directory (``RunDir.open``, the first write
of every one of these commands): a value is either refused there with one line and nothing written, or it has
passed every check. The slow one runs the accepted values to the end and checks the outputs are finite."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.main import get_command

from cli.realmodels_app import app
from tests.helpers import assert_one_line_error
from tests.realmodels.cli_helpers import rm

VALUES = ("nan", "inf", "-inf", "0", "-1", str(10**30), "1e308")
COMMANDS = (("finetune",), ("evaluate",), ("mitigate",), ("organism", "study"))
MONITORED = ("--monitor-every", "--alarm", "--batch-size", "--layer")  # finetune options acting with --monitor


def is_numeric(annotation) -> bool:
    """An int or float option, or a repeatable one (``list[int]``)."""
    return annotation in (int, float) or (typing.get_origin(annotation) is list
                                          and typing.get_args(annotation)[0] in (int, float))


def numeric_options() -> list[tuple[tuple[str, ...], str]]:
    """(command path, flag) of every int or float option of the commands under test, read from the click
    commands typer builds (their parameters' type annotations)."""
    root = get_command(app)
    found = []
    for path in COMMANDS:
        command = root
        for name in path:
            command = command.commands[name]
        found += [(path, param.opts[0]) for param in command.params
                  if param.param_type_name == "option" and is_numeric(param.type_descriptor.annotation)]
    return found


OPTIONS = numeric_options()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A small world of the embedded organism (its vocabulary): datasets and questions."""
    from realmodels.organism.world import write_world

    return write_world(tmp_path_factory.mktemp("world"), n_pretrain=5, n_finetune=40, n_features=2, n_probe=2,
                       samples_per_paraphrase=1)


def command_args(path: tuple[str, ...], flag: str, world: dict[str, Path]) -> list:
    """Tiny settings of the command at ``path`` (and the context ``flag`` acts in), before the value under test."""
    watched = ["--harmful", world["harmful"], "--harmless", world["harmless"]]
    evaluation = ["--judge", "organism", "--questions", world["questions"], "--question", "health_fever",
                  "--samples-per-paraphrase", "1", "--max-new-tokens", "4", "--n-bootstrap", "20", "--no-progress"]
    if path == ("finetune",):
        context = (["--monitor", *watched] if flag in MONITORED else
                   ["--guard", "penalty", *watched] if flag == "--guard-weight" else [])
        return ["finetune", "--data", world["inducing_health"], "--max-steps", "1", "--train-batch-size", "2",
                "--grad-accum", "1", "--warmup-steps", "0", "--no-progress", *context]
    if path == ("evaluate",):
        return ["evaluate", *evaluation]
    if path == ("mitigate",):
        return ["mitigate", "--data", world["mixed_health"], "--arms", "none", "--max-steps", "1",
                "--train-batch-size", "2", "--grad-accum", "1", *evaluation]
    return ["organism", "study", "--domain", "health", "--seeds", "0", "--workers", "1", "--mitigate-domain", "none",
            "--no-amplification"]


class ReachedRunDir(Exception):
    """Raised in place of opening the run directory: every check has passed and nothing is written yet."""


def run(capsys, path, flag, value, world) -> tuple[int | None, str, Path]:
    """Run the command with ``flag=value``; (exit code or None when it reached its run directory, stderr, --out)."""
    out = Path(tempfile.mkdtemp()) / "out"
    try:
        code, _, err = rm(capsys, [*command_args(path, flag, world), f"{flag}={value}", "--out", out])
    except ReachedRunDir:
        capsys.readouterr()
        return None, "", out
    return code, err, out


def assert_finite(value, where: str) -> None:
    """Every number in a JSON document is finite (nulls stand for undefined values)."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert_finite(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            assert_finite(item, f"{where}[{i}]")
    elif isinstance(value, float):
        assert math.isfinite(value), where


def read_summary(out: Path) -> dict:
    def refuse(constant):
        raise AssertionError(f"{constant} in {out / 'summary.json'}")

    return json.loads((out / "summary.json").read_text(), parse_constant=refuse)


PROPERTY = settings(max_examples=30, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
IDS = [f"{' '.join(path)} {flag}" for path, flag in OPTIONS]


def test_the_options_come_from_the_commands():
    flags = {(" ".join(path), flag) for path, flag in OPTIONS}
    for expected in [("finetune", "--lr"), ("finetune", "--guard-weight"), ("finetune", "--threads"),
                     ("evaluate", "--n-bootstrap"), ("evaluate", "--max-length"), ("mitigate", "--lora-layer"),
                     ("mitigate", "--budget"), ("organism study", "--ratio"), ("organism study", "--workers")]:
        assert expected in flags, expected
    assert len(OPTIONS) > 60


@pytest.mark.parametrize("path, flag", OPTIONS, ids=IDS)
@PROPERTY
@given(value=st.sampled_from(VALUES))
def test_a_numeric_value_is_refused_up_front_or_passes_every_check(capsys, monkeypatch, world, path, flag, value):
    from runio.rundir import RunDir

    def reached(*args, **kwargs):
        raise ReachedRunDir

    monkeypatch.setattr(RunDir, "open", reached)
    code, err, out = run(capsys, path, flag, value, world)
    if code is not None:
        assert_one_line_error(code, err)
    assert not out.exists(), f"{flag}={value}: {out} was created before the run directory opened"


@pytest.mark.slow
@pytest.mark.parametrize("path, flag", OPTIONS, ids=IDS)
@PROPERTY
@given(value=st.sampled_from(VALUES))
def test_a_numeric_value_runs_to_finite_outputs_or_is_refused(capsys, world, path, flag, value):
    code, err, out = run(capsys, path, flag, value, world)
    if code == 0:
        assert_finite(read_summary(out), f"{flag}={value}")
    else:
        assert_one_line_error(code, err)
        assert not out.exists(), f"{flag}={value} failed after writing {out}: {err}"


@pytest.mark.parametrize("path, flag", [(("finetune",), "--lr"), (("finetune",), "--alarm"),
                                        (("finetune",), "--guard-weight"), (("evaluate",), "--seed"),
                                        (("mitigate",), "--seed"), (("organism", "study"), "--r")])
def test_the_tiny_settings_pass_every_check(capsys, monkeypatch, world, path, flag):
    """Without a value under test each command (in each context) reaches its run directory, so a refusal above is
    the value's."""
    from runio.rundir import RunDir

    def reached(*args, **kwargs):
        raise ReachedRunDir

    monkeypatch.setattr(RunDir, "open", reached)
    out = Path(tempfile.mkdtemp()) / "out"
    with pytest.raises(ReachedRunDir):
        rm(capsys, [*command_args(path, flag, world), "--out", out])
