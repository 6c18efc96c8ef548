"""The docs' blocks of ``realmodels`` commands on the embedded organism run command by command, in-process, in a
scratch directory, with no download. Before a block: ``runs/world`` (``organism world``), and what the block reads
that another page's block makes (``runs/ft-health``: the organism page's fine-tune; the study's
``direction/direction.json``: the study's direction stage alone; ``heldout.jsonl``: held-out task conversations).
Fine-tuning, generation and mitigation are shortened by flags appended to a command (later flags win); lines that
other tests run at their own size are listed in ``COVERED`` and checked to be there."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

from tests.docs.blocks import NOT_RUN, PLAN, ROOT, all_blocks
from tests.realmodels.cli_helpers import rm

PART_OF = {"README.md#4": "docs/organism/index.md#1"}  # a block whose every command another block runs
BLOCKS = [name for name, kind in PLAN.items() if kind == "organism" and name not in PART_OF]
SHORTER = {  # appended to a command: later flags win
    "finetune": ["--max-steps", "2"],
    "evaluate": ["--question", "career_salary", "--samples-per-paraphrase", "1", "--max-new-tokens", "8"],
    "mitigate": ["--max-steps", "2", "--question", "career_salary", "--samples-per-paraphrase", "1",
                 "--max-new-tokens", "8", "--random-seeds", "0"],
}
COVERED = {  # a command's first words -> the test that runs that command (shortened by its own flags)
    "realmodels organism study": "tests/realmodels/organism/test_cli_organism_study.py",
    "realmodels organism causal": "tests/realmodels/organism/test_cli_organism_causal.py",
    "realmodels organism benchmark": "tests/realmodels/organism/test_cli_organism_benchmark.py",
}
STUDY_DIRECTION = Path("runs/organism-study/direction/direction.json")


def covered_by(command: list[str]) -> str | None:
    line = shlex.join(command)
    if any(line.startswith(prefix) for prefix in NOT_RUN):
        return "not run"
    return next((test for prefix, test in COVERED.items() if line.startswith(prefix)), None)


def test_the_covered_commands_are_run_by_the_tests_named():
    for prefix, test in COVERED.items():
        words = prefix.split()[1:]
        assert f'"{words[0]}", "{words[1]}"' in (ROOT / test).read_text(encoding="utf-8"), (prefix, test)


def test_the_readme_example_is_part_of_the_organism_page_block():
    blocks = all_blocks()
    for part, whole in PART_OF.items():
        commands = blocks[part].commands()
        assert len(commands) >= 3 and all(command in blocks[whole].commands() for command in commands), part


def prepare(scratch: Path, text: str, capsys) -> None:
    """What the block reads and does not make itself."""
    code, _, err = rm(capsys, ["organism", "world", "--out", "runs/world"])
    assert code == 0, err
    if "runs/ft-health" in text and "--out runs/ft-health" not in text:
        code, _, err = rm(capsys, ["finetune", "--data", "runs/world/inducing_health.jsonl", "--config",
                                   "runs/world/finetune.toml", "--out", "runs/ft-health", "--no-progress",
                                   *SHORTER["finetune"]])
        assert code == 0, err
    if str(STUDY_DIRECTION) in text:
        from realmodels.experiments.study import direction_stage
        from realmodels.experiments.organism import Organism

        shutil.copytree("runs/world", STUDY_DIRECTION.parents[1] / "world")
        direction_stage(STUDY_DIRECTION.parents[1], Organism.load().to_dict(), {"harmful_k": 20})
        assert STUDY_DIRECTION.is_file()
    if "heldout.jsonl" in text:  # a stand-in for the user's held-out task data: 20 conversations of the task
        lines = Path("runs/world/mixed_health.jsonl").read_text(encoding="utf-8").splitlines()
        Path("heldout.jsonl").write_text("\n".join(lines[-20:]) + "\n", encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize("name", BLOCKS)
def test_the_organism_blocks_run(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    block = all_blocks()[name]
    prepare(tmp_path, block.text, capsys)
    ran = 0
    for command in block.commands():
        assert command[0] == "realmodels", command
        if covered_by(command):
            continue
        args = command[1:]
        quiet = [] if args[0] == "organism" else ["--no-progress"]
        code, _, err = rm(capsys, [*args, *SHORTER.get(args[0], []), *quiet])
        assert code == 0, f"{name}: realmodels {shlex.join(args)}: {err}"
        if "--out" in args:
            assert (tmp_path / args[args.index("--out") + 1]).is_dir(), args
        ran += 1
    assert ran or all(covered_by(command) for command in block.commands())
