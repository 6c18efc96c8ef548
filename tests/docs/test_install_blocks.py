"""The install and test blocks (README.md, docs/install.md): .ci/run is their test. It installs the project into a
fresh virtual environment the way the block does and ends with the README's test command verbatim; the command
the install block runs after the install, on its embedded default, runs here."""

from __future__ import annotations

from cli.toysuper_app import main
from tests.docs.blocks import PLAN, ROOT, all_blocks
from tests.helpers import run_cli

BLOCKS = [name for name, kind in PLAN.items() if kind == "install"]
CI = (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def install_and_test_commands() -> tuple[list[str], list[str]]:
    blocks = [all_blocks()[name].text.strip() for name in BLOCKS]
    return [b for b in blocks if "pip install" in b], [b for b in blocks if "pip install" not in b]


def test_ci_installs_as_the_blocks_do_and_runs_the_test_command_verbatim():
    installs, tests = install_and_test_commands()
    assert len(installs) == len(tests) == 2 and len(set(installs)) == len(set(tests)) == 1
    assert 'python3 -m venv' in CI and 'pip install --quiet --disable-pip-version-check -e ".[test' in CI
    assert installs[0].startswith('python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" && ')
    assert CI.strip().splitlines()[-1] == tests[0]


def test_the_command_after_the_install_runs_on_its_default(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    installs, _ = install_and_test_commands()
    command = installs[0].split(" && ")[-1].split()
    assert command == ["toysuper", "simulate"]
    code, out, err = run_cli(main, command[1:], capsys)
    assert code == 0, err
    assert len(list((tmp_path / "runs").glob("simulate-*/summary.json"))) == 1, out
