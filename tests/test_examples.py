"""``examples/`` runs: the organism pipeline from Python (geometry -> filter -> finetune -> evaluate ->
amplification) in a fresh interpreter, as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_organism_pipeline_example_runs_and_resumes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / "examples" / "organism_pipeline.py"), str(tmp_path / "run")]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for stage in ("geometry:", "filter:", "finetune:", "evaluate:", "amplification:"):
        assert any(line.startswith(stage) for line in lines), done.stdout
    for run in ("geometry", "filter", "finetune", "evaluate-base", "evaluate-finetuned", "amplification"):
        assert (tmp_path / "run" / run / "summary.json").is_file(), run
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert again.returncode == 0, again.stderr
    assert "already finished" in again.stdout
    summary_lines = [line for line in lines if line.startswith(("geometry:", "filter:", "amplification:"))]
    assert summary_lines == [line for line in again.stdout.splitlines()
                             if line.startswith(("geometry:", "filter:", "amplification:"))]
