"""Every command block of README.md and docs/ is assigned to a test (tests/docs/blocks.py: PLAN), and the plan
names no block that is gone: a new or moved block fails here until the plan says which test runs it."""

from __future__ import annotations

from tests.docs.blocks import KINDS, NOT_RUN, NOT_RUN_BLOCKS, PLAN, all_blocks


def test_every_block_has_a_plan_and_every_plan_a_block():
    blocks = all_blocks()
    assert sorted(set(blocks) - set(PLAN)) == [], "blocks without a test: add them to tests/docs/blocks.py PLAN"
    assert sorted(set(PLAN) - set(blocks)) == [], "PLAN names blocks that are gone"
    assert set(PLAN.values()) <= {*KINDS, "not-run"}
    assert {name for name, kind in PLAN.items() if kind == "not-run"} == set(NOT_RUN_BLOCKS)


def test_every_line_not_run_is_in_a_page_and_the_blocks_are_tested_by_language():
    blocks = all_blocks()
    lines = [" ".join(command) for block in blocks.values() if block.language == "bash" for command in block.commands()]
    for prefix in NOT_RUN:
        assert any(line.startswith(prefix) for line in lines), prefix
    for name, kind in PLAN.items():
        assert (blocks[name].language == "python") == (kind == "python" or name == "docs/real-models/index.md#1"), name
