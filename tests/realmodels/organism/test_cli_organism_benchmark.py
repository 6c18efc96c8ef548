"""``realmodels organism benchmark`` end to end on the embedded organism (a tiny config: one cell, a few arms, a
few steps), its resume after a SIGKILL (the rerun's tables and figures equal an uninterrupted run's), and bad input
(one line, exit 2, nothing written)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.realmodels.cli_helpers import assert_bad, rm

ROOT = Path(__file__).resolve().parents[3]
TINY = ["organism", "benchmark", "--domain", "health", "--seeds", "0", "--max-steps", "3", "--n-heldout", "20",
        "--workers", "1"]
OUTPUTS = ("arms.csv", "runs.csv", "budget_curve.csv", "benchmark.md", "summary.json", "figures/pareto.png",
           "figures/pareto.svg", "figures/budget_curve.png")


@pytest.mark.slow
def test_benchmark_end_to_end_and_killed_mid_run_resumes_to_the_uninterrupted_outputs(tmp_path, capsys):
    """One uninterrupted run (checked, then rerun: every run skipped, the outputs rewritten equal), then the same
    benchmark SIGKILLed after its first finished run and rerun: its tables and figures equal the uninterrupted
    run's."""
    out = tmp_path / "bench"
    args = [*TINY, "--arms", "none,persona,interleave,kl", "--budget", "0.25", "--budgets", "0.25,0.5"]
    code, stdout, err = rm(capsys, [*args, "--out", out])
    assert code == 0, err
    arms = pd.read_csv(out / "arms.csv")
    assert list(arms["arm"]) == ["none", "persona", "interleave", "kl"]
    assert (arms["em_n"] > 0).all() and arms["cells"].eq(1).all()
    assert arms.loc[0, "task_retention"] == pytest.approx(1.0) or pd.isna(arms.loc[0, "task_retention"])
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs["name"]) == sorted(["none", "persona", "interleave", "kl", "persona-b0.5", "interleave-b0.5"])
    curve = pd.read_csv(out / "budget_curve.csv")
    assert set(zip(curve["arm"], curve["budget"])) == {("persona", 0.25), ("interleave", 0.25), ("persona", 0.5),
                                                       ("interleave", 0.5)}
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cells"] == ["health-s0"] and summary["n_runs"] == 6
    persona = runs.set_index("name").loc["persona-b0.5"]
    assert persona["removed_total"] == round(0.5 * 300)
    added = json.loads((out / "cells" / "health-s0" / "filter-interleave-b0.5" / "summary.json").read_text())
    assert added["n_added"] == 150
    assert "persona" in stdout and "retention" in stdout
    before = {name: (out / name).read_bytes() for name in OUTPUTS}
    code, _, err = rm(capsys, [*args, "--out", out])  # a finished benchmark: every run skipped, outputs equal
    assert code == 0, err
    assert {name: (out / name).read_bytes() for name in OUTPUTS} == before

    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "cli.realmodels_app", *args, "--out", str(killed)], cwd=ROOT,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not list((killed / "jobs").glob("*.json")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert process.poll() is None, "the run ended before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed / "arms.csv").exists()
    assert 1 <= len(list((killed / "jobs").glob("*.json"))) < len(runs)
    code, _, err = rm(capsys, [*args, "--out", killed])
    assert code == 0, err
    for name in OUTPUTS:
        assert (killed / name).read_bytes() == (out / name).read_bytes(), name


@pytest.mark.parametrize("extra, match", [
    (["--arms", "none,telepathy"], "unknown arm 'telepathy'"),
    (["--arms", "persona"], "must include none"),
    (["--budgets", "0.1,nan"], "finite"),
    (["--budget", "1.5"], "removal fraction"),
    (["--curve-seeds", "5"], "--curve-seeds 5 is not one of the seeds"),
    (["--domain", "astrology"], "unknown domain 'astrology'"),
    (["--max-steps", "0"], "--max-steps"),
    (["--steer-gaps", "nan"], "--steer-gaps must be a finite number"),
    (["--caft", "everything"], "caft"),
    (["--workers", "0"], "workers"),
])
def test_benchmark_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, extra, match):
    assert_bad(capsys, tmp_path, [*TINY, *extra], match)


def test_mitigate_new_arms_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    from realmodels.analysis.direction import Direction, save_direction
    from realmodels.experiments.organism import Organism, write_organism_world

    world = tmp_path / "world"
    write_organism_world(world, Organism.load())
    base = ["mitigate", "--data", world / "mixed_health.jsonl", "--judge", "organism", "--questions",
            world / "questions.yaml"]
    assert_bad(capsys, tmp_path, [*base, "--arms", "none,persona"], "needs a direction file")
    assert_bad(capsys, tmp_path, [*base, "--arms", "none,steer"], "needs a direction file")
    assert_bad(capsys, tmp_path, [*base, "--arms", "none,interleave"], "aligned chat JSONL")
    save_direction(tmp_path / "wide.json", Direction(layer=Organism.load().layer, vector=[0.5] * 7))
    assert_bad(capsys, tmp_path, [*base, "--arms", "none,caft", "--direction", tmp_path / "wide.json"], "7 values")
    assert_bad(capsys, tmp_path, [*base, "--budgets", "0.1,0.1"], "distinct")
    assert_bad(capsys, tmp_path, [*base, "--arms", "none,kl", "--kl-weight", "-1"], "--kl-weight must be a finite number in [0")
