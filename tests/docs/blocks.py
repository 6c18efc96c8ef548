"""The fenced ``bash`` and ``python`` blocks of README.md and docs/, and the plan that says which test runs each.

A block is named ``<page>#<n>`` (n counts the page's bash and python blocks from 1). Every block has one entry in
``PLAN``: the kind of test that runs it (``tests/docs/test_*_blocks.py`` run every block of their kind, so the plan
is where a block is assigned), or, for a line no test can run here, a reason in ``NOT_RUN`` (the rest of its block
still runs). ``tests/docs/test_plan.py`` checks that the plan and the pages agree both ways."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(bash|python)\n(.*?)^```", re.S | re.M)


@dataclass(frozen=True)
class Block:
    name: str        # <page relative to the repository>#<n>
    language: str    # bash | python
    text: str

    def commands(self) -> list[list[str]]:
        """The block's shell commands as argument lists: continuation lines joined, comments and blank lines cut
        (for blocks of plain commands; blocks with shell syntax run under bash)."""
        joined = self.text.replace("\\\n", " ")
        lines = [re.split(r"(?:^|\s)#", line, maxsplit=1)[0].strip() for line in joined.splitlines()]
        return [shlex.split(line) for line in lines if line]


def page_blocks(page: Path) -> list[Block]:
    rel = page.relative_to(ROOT).as_posix()
    return [Block(f"{rel}#{n}", m.group(1), m.group(2))
            for n, m in enumerate(FENCE.finditer(page.read_text(encoding="utf-8")), start=1)]


def all_blocks() -> dict[str, Block]:
    return {block.name: block for page in PAGES for block in page_blocks(page)}


# kind -> the test that runs the blocks of that kind
KINDS = {
    "install": "test_install_blocks.py: .ci/run runs the install on a fresh clone; the test checks that and runs "
               "the command after it, and that .ci/run ends with the README's test command",
    "python": "test_python_blocks.py: exec'd as written in a scratch directory",
    "organism": "test_organism_blocks.py: on the embedded organism in a scratch directory (runs/world written first)",
    "checkpoint": "test_checkpoint_blocks.py: the registered checkpoint served from a local HF hub cache holding a "
                  "tiny Gemma 2 in the upstream layout and Gemma Scope SAEs in theirs; the data files named by the "
                  "page written from the organism's world",
    "toy": "test_toy_blocks.py: toysuper commands with a tiny --config / --config-dir appended",
    "bash": "test_bash_blocks.py: the block itself under bash -euo pipefail (loops, $(...) and a real `ray start`)",
    "benchmarks": "test_benchmark_blocks.py: every script named exists and accepts the flags the page gives it",
}

PLAN = {
    "README.md#1": "install",
    "README.md#2": "install",
    "README.md#3": "python",
    "README.md#4": "organism",
    "docs/install.md#1": "install",
    "docs/install.md#2": "install",
    "docs/benchmarks.md#1": "benchmarks",
    "docs/organism/index.md#1": "organism",
    "docs/organism/causal.md#1": "organism",
    "docs/organism/benchmark.md#1": "organism",
    "docs/real-models/diff.md#1": "organism",
    "docs/real-models/finetune.md#2": "organism",
    "docs/real-models/mitigate.md#1": "organism",
    "docs/real-models/index.md#1": "checkpoint",
    "docs/real-models/models.md#1": "checkpoint",
    "docs/real-models/finetune.md#1": "checkpoint",
    "docs/real-models/features.md#1": "checkpoint",
    "docs/real-models/evaluate.md#1": "checkpoint",
    "docs/real-models/mitigate.md#2": "checkpoint",
    "docs/toy/simulate.md#1": "python",
    "docs/toy/study.md#1": "toy",
    "docs/toy/study.md#2": "toy",
    "docs/toy/study.md#3": "toy",
    "docs/toy/study.md#4": "toy",
    "docs/toy/study.md#5": "toy",
    "docs/ray.md#1": "bash",
    "docs/ray.md#2": "not-run",
    "docs/smollm2.md#1": "bash",
}

# Lines (a block's command that starts with the key) that no test runs here, and why. The rest of the block runs.
NOT_RUN = {
    "realmodels organism benchmark --out runs/organism-benchmark --workers 2":
        "the full benchmark (3 domains x 3 seeds, every arm) takes 8 min on 2 cores; the block's second, small "
        "command runs, and tests/realmodels/organism/test_cli_organism_benchmark.py runs every arm",
    "vllm serve":
        "vLLM needs a GPU and is not installable here; a local OpenAI-compatible server "
        "(tests/realmodels/evaluate/fake_openai.py) stands in for it and for the judge endpoint",
    "realmodels lm-study --data eng200":
        "the study's 8 arms (7 monitored fine-tunes, the guard, greedy samples) took 6 min 18 s on SmolLM2 even at "
        "2 steps each; tests/realmodels/experiments/test_lm_study.py runs lm-study end to end on a tiny model, and "
        "the SmolLM2 block's test puts in its place what the later lines read (the inducing arm, the probes)",
    "ray start --head --num-gpus 8":
        "needs GPU nodes and Gemma-2 9B; ray.md#1 runs the same --ray-address auto path on a real `ray start`",
}
NOT_RUN_BLOCKS = {
    "docs/ray.md#2": NOT_RUN["ray start --head --num-gpus 8"],
}
