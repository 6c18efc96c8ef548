"""The documented model-organism commands run on a fresh checkout, on the embedded organism, with no download: the
block of docs/organism/index.md ("The model organism") is parsed and run command by command in a scratch directory
(fine-tuning, generation and mitigation shortened by appended flags, which override the page's; the study and the
causal tests have their own tests). The README's command-line example is a part of that block."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests.realmodels.cli_helpers import rm

ROOT = Path(__file__).resolve().parents[3]
PAGE = ROOT / "docs" / "organism" / "index.md"
README = ROOT / "README.md"
MARKER = "# on a fresh clone, on the embedded organism"
SHORTER = {  # appended to a command: later flags win
    "finetune": ["--max-steps", "2"],
    "evaluate": ["--question", "career_salary", "--samples-per-paraphrase", "1", "--max-new-tokens", "8"],
    "mitigate": ["--max-steps", "2", "--question", "career_salary", "--samples-per-paraphrase", "1",
                 "--max-new-tokens", "8", "--random-seeds", "0"],
}


def block_commands(text: str, start: int) -> list[list[str]]:
    """The shell commands of the fenced block that runs from ``start`` (continuation lines joined, comments cut)."""
    block = text[start:text.index("```", text.index("\n", start))]
    joined = block.replace("\\\n", " ")
    return [shlex.split(line.split("  #")[0]) for line in joined.splitlines()[1:] if line.strip()]


def readme_commands() -> list[list[str]]:
    text = PAGE.read_text(encoding="utf-8")
    commands = block_commands(text, text.index(MARKER))
    assert all(c[0] == "realmodels" for c in commands), commands
    return [c[1:] for c in commands]


def readme_example() -> list[list[str]]:
    """The README's command-line example: the bash block under "## From the command line"."""
    text = README.read_text(encoding="utf-8")
    return block_commands(text, text.index("```bash", text.index("## From the command line")))


def test_the_readme_block_is_found():
    names = [c[0] if c[0] != "organism" else f"organism {c[1]}" for c in readme_commands()]
    assert names[0] == "organism world" and {"geometry", "audit", "filter", "finetune", "amplification",
                                             "evaluate", "mitigate", "organism study", "organism causal"} <= set(names)


def test_the_readme_example_is_part_of_the_tested_block():
    example = readme_example()
    assert len(example) >= 3 and all(c[0] == "realmodels" for c in example), example
    tested = readme_commands()
    assert all(c[1:] in tested for c in example), example


@pytest.mark.slow
def test_the_readme_organism_commands_run_on_a_fresh_clone(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for args in readme_commands():
        if args[:2] in (["organism", "study"], ["organism", "causal"]):
            continue  # tests/realmodels/organism/test_cli_organism_{study,causal}.py run them
        quiet = [] if args[0] == "organism" else ["--no-progress"]
        code, _, err = rm(capsys, [*args, *SHORTER.get(args[0], []), *quiet])
        assert code == 0, f"realmodels {shlex.join(args)}: {err}"
    assert (tmp_path / "runs" / "mitigate-health" / "mitigation.csv").is_file()
