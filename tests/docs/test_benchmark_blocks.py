"""The benchmarks page's block: the scripts take minutes each, so they are not run here (their committed results
are what the page shows). Every line names a script that exists, and every flag it gives is one of that script's
argparse options."""

from __future__ import annotations

import re

from tests.docs.blocks import PLAN, ROOT, all_blocks

BLOCKS = [name for name, kind in PLAN.items() if kind == "benchmarks"]


def test_every_benchmark_line_names_a_script_and_its_options():
    for name in BLOCKS:
        commands = all_blocks()[name].commands()
        assert commands
        for command in commands:
            assert command[:1] == ["python"] and command[1].startswith("benchmarks/"), command
            source = (ROOT / command[1]).read_text(encoding="utf-8")
            options = set(re.findall(r"add_argument\(\s*\"(--[\w-]+)\"", source))
            flags = {word for word in command[2:] if word.startswith("--")}
            assert flags <= options, (command, sorted(flags - options))
