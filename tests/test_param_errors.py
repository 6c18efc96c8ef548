"""Library messages name parameters, the CLI maps them to flags (issue 20 item 4).

``theory.errors.ParamError`` names each parameter in backticks as the Python API spells it; ``cli.errors.user_errors``
renders it with the command's flags. Checked here: the mechanism (a property of ``params`` and ``renamed``), that no
library message names a command-line flag (a scan of the library's source), that every ``flags=`` mapping of a
command names one of its own options, and a few real commands whose library errors come out as their flags (and
the same errors from Python, naming the parameters)."""

from __future__ import annotations

import ast
import inspect
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.main import get_command

from cli.errors import flag, user_errors
from tests.helpers import assert_one_line_error, run_cli
from tests.realmodels.cli_helpers import assert_bad
from theory.errors import InputError, ParamError

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("theory", "runio", "toysuper", "realmodels")
FLAG = re.compile(r"(?<![\w-])--[A-Za-z]")
ALLOWED = {  # (file, text of the string constant) -> why naming a "--" option there is right
    ("runio/jobs.py", "`ray start --head`"): "Ray's own shell command, quoted as a command to run",
    ("realmodels/loading/hub.py", " --include '"): "the `hf download` shell command (huggingface_hub's CLI)",
    ("realmodels/loading/packaged.py", "pip download --no-deps"): "pip's own command line, run and logged whole",
    ("realmodels/loading/embedded.py", "realmodels organism build --out DIR"): "a shell command to run, whole",
    ("realmodels/experiments/organism.py", "realmodels organism build --out DIR"): "a shell command to run, whole",
    ("realmodels/experiments/study.py", "--"): "the study's commands.sh: each stage's realmodels command line, "
                                               "recorded for the user to rerun or vary",
    ("realmodels/experiments/causal.py", "--"): "the causal tests' commands.sh, as the study's",
}

NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)
TEXT = st.text(st.characters(blacklist_characters="`", blacklist_categories=("Cs",)), max_size=20)


# ------------------------------------------------------------------------------------------------ the mechanism
@given(parts=st.lists(st.tuples(TEXT, NAME), max_size=4), tail=TEXT)
def test_params_are_the_backticked_names_and_renamed_replaces_each(parts, tail):
    message = "".join(f"{text}`{name}`" for text, name in parts) + tail
    error = ParamError(message)
    assert error.params == [name for _, name in parts]
    assert error.renamed(lambda name: f"<{name.upper()}>") == "".join(
        f"{text}<{name.upper()}>" for text, name in parts) + tail
    assert error.renamed(lambda name: f"`{name}`") == message


@given(text=TEXT)
def test_a_message_without_backticks_is_unchanged(text):
    assert ParamError(text).params == [] and ParamError(text).renamed(flag) == text


def test_a_flag_is_the_parameter_with_dashes_unless_the_command_spells_it_differently():
    assert flag("max_length") == "--max-length" and flag("r") == "--r"
    assert flag("lora_layers", {"lora_layers": "--lora-layer"}) == "--lora-layer"
    assert flag("max_length", {"lora_layers": "--lora-layer"}) == "--max-length"


@pytest.mark.parametrize("error, flags, line", [
    (ParamError("`max_length` must be at least 1, got 0"), None, "--max-length must be at least 1, got 0"),
    (ParamError("`lora_layers` 5 is not a decoder layer"), {"lora_layers": "--lora-layer"},
     "--lora-layer 5 is not a decoder layer"),
    (InputError("`workers` in a plain InputError is not a parameter"), None,
     "`workers` in a plain InputError is not a parameter"),
])
def test_user_errors_renders_a_param_error_with_the_flags(capsys, error, flags, line):
    def command():
        raise error

    with pytest.raises(SystemExit) as exited:
        user_errors(command, flags=flags)()
    err = capsys.readouterr().err
    assert_one_line_error(exited.value.code, err)
    assert err.strip() == f"error: {line}"


# --------------------------------------------------------------------------------------- no flag in the library
def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (of modules, classes, functions, dataclass fields)."""
    return {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)}


def flag_strings() -> list[tuple[str, int, str]]:
    """(file, line, text) of every string constant of the library packages (docstrings aside) naming a flag."""
    found = []
    for package in LIBRARY:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            docstrings = _docstrings(tree)
            for node in ast.walk(tree):
                if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                        and FLAG.search(node.value)):
                    found.append((str(path.relative_to(ROOT)), node.lineno, node.value))
    return found


def test_no_library_message_names_a_command_line_flag():
    """A flag in a library message is wrong from Python; the message names the parameter in backticks (a
    ParamError) and the CLI renders it as the flag. Only genuine non-flag uses are allowed (ALLOWED's reasons)."""
    found = flag_strings()
    offending = [f"{file}:{line}: {text!r}" for file, line, text in found
                 if not any(file == allowed_file and snippet in text for allowed_file, snippet in ALLOWED)]
    assert not offending, "library strings naming command-line flags:\n" + "\n".join(offending)
    stale = [key for key in ALLOWED if not any(file == key[0] and key[1] in text for file, _, text in found)]
    assert not stale, f"allow-list entries that match nothing any more: {stale}"


def test_the_scan_finds_a_flag_in_an_error_message(tmp_path, monkeypatch):
    """The scan is not vacuous: a raise naming a flag in a library module is reported."""
    module = tmp_path / "realmodels" / "bad.py"
    module.parent.mkdir()
    module.write_text('"""Docstrings may say --max-length."""\n\ndef f(n):\n'
                      '    raise ValueError(f"--max-length must be at least 1, got {n}")\n')
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert flag_strings() == [("realmodels/bad.py", 4, "--max-length must be at least 1, got ")]


# ------------------------------------------------------------------------------------------- the commands' flags
def _commands():
    """(name, click command) of every command of both apps."""
    from cli.realmodels_app import app as realmodels
    from cli.toysuper_app import app as toysuper

    def walk(group, prefix):
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                yield from walk(command, f"{prefix} {name}")
            else:
                yield f"{prefix} {name}", command

    for prefix, app in (("realmodels", realmodels), ("toysuper", toysuper)):
        yield from walk(get_command(app), prefix)


def test_every_flags_mapping_names_an_option_of_its_command():
    mapped = 0
    for name, command in _commands():
        flags, function = {}, command.callback
        while function is not None and not flags:  # typer's wrapper -> user_errors' wrapper -> the command
            flags = inspect.getclosurevars(function).nonlocals.get("flags") or {}
            function = getattr(function, "__wrapped__", None)
        options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        for param, text in flags.items():
            if text.startswith("--"):
                mapped += 1
                assert text in options, f"{name}: {param} -> {text}, not an option of the command"
    assert mapped >= 6  # finetune, mitigate, organism study and toysuper figures map theirs


# ------------------------------------------------------------------------------- library errors through commands
@pytest.mark.parametrize("args, line", [
    (["finetune", "--data", "data.jsonl", "--preset", "em-rank1"],
     "the em-rank1 preset puts one adapter on one layer: give exactly one --lora-layer"),
    (["finetune", "--data", "data.jsonl", "--train-batch-size", "0"], "--train-batch-size must be at least 1, got 0"),
    (["finetune", "--data", "data.jsonl", "--max-steps", "0"],
     "--max-steps must be at least 1 (or -1: use the epochs), got 0"),
    (["finetune", "--data", "data.jsonl", "--monitor", "--monitor-every", "0"],
     "--monitor-every must be at least 1, got 0"),
    (["organism", "study", "--domain", "health", "--domain", "health"], "--domain names a domain twice: health, health"),
    (["organism", "study", "--train-batch-size", "0"], "--train-batch-size must be > 0, got 0"),
    (["organism", "study", "--workers", "0"], "--workers must be an integer >= 1, got 0"),
])
def test_a_library_param_error_is_the_commands_flag(tmp_path, capsys, args, line):
    err = assert_bad(capsys, tmp_path, args, line)
    assert err.strip() == f"error: {line}"


def test_toysuper_density_renders_the_sweeps_workers_as_its_flag(tmp_path, capsys):
    from cli.toysuper_app import main

    out = tmp_path / "out"
    code, _, err = run_cli(main, ["density", "--workers", "2000", "--out", out], capsys)
    assert_one_line_error(code, err)
    assert err.strip() == "error: --workers must be at most 1024, got 2000" and not out.exists()


def test_from_python_the_same_errors_name_the_parameters():
    from realmodels.finetune.config import FinetuneConfig
    from realmodels.organism.study import StudyConfig, StudyRecipe
    from runio.jobs import check_workers

    cases = [(lambda: FinetuneConfig(preset="em-rank1"), "lora_layers", "give exactly one `lora_layers`"),
             (lambda: FinetuneConfig(batch_size=0), "batch_size", "`batch_size` must be at least 1, got 0"),
             (lambda: StudyConfig(domains=("health", "health")), "domains", "`domains` names a domain twice"),
             (lambda: StudyConfig(recipe=StudyRecipe(batch_size=0)), "batch_size", "`batch_size` must be > 0"),
             (lambda: check_workers(0), "workers", "`workers` must be an integer >= 1, got 0")]
    for build, param, text in cases:
        with pytest.raises(ParamError) as raised:
            build()
        assert raised.value.params == [param] and text in str(raised.value)
