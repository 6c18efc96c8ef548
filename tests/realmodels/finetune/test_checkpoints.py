"""Checkpoints under faults (issue 19): a run killed (SIGKILL) while a checkpoint is written, a disk that fills
during a save, and checkpoints left truncated, incomplete, with a pickle payload or with NaN weights; each rerun
resumes from the last complete checkpoint (saying which one it skipped) and ends with the uninterrupted run's
adapter and log. A diverging run (LoRA alpha 1e308) stops with one line and writes no result."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from realmodels.finetune.checkpoints import checkpoint_problem, write_failure
from tests.helpers import assert_one_line_error
from tests.realmodels.cli_helpers import rm

ROOT = Path(__file__).resolve().parents[3]
TINY = ["--train-batch-size", "2", "--grad-accum", "1", "--warmup-steps", "0", "--no-progress"]
LOG_COLUMNS = ["step", "loss", "lr", "grad_norm", "tokens"]
ENOSPC_TORCH = "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"


def _args(llama_dir, data, out) -> list:
    return ["finetune", "--data", data, "--model", llama_dir, "--max-steps", "6", "--save-steps", "2", "--lr",
            "1e-3", "--r", "4", *TINY, "--out", out]


def _adapter(out):
    return load_file(out / "adapter" / "adapter_model.safetensors")


def _assert_same_result(run: Path, reference: Path) -> None:
    a, b = _adapter(run), _adapter(reference)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "the uninterrupted run's adapter"
    pd.testing.assert_frame_equal(pd.read_csv(run / "train_log.csv")[LOG_COLUMNS],
                                  pd.read_csv(reference / "train_log.csv")[LOG_COLUMNS])


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_llama_dir, inducing_jsonl) -> Path:
    """An uninterrupted run: checkpoints 2, 4 and 6, the adapter, the log."""
    from cli.realmodels_app import main

    out = tmp_path_factory.mktemp("finished") / "run"
    old, sys.argv = sys.argv, ["realmodels", *map(str, _args(tiny_llama_dir, inducing_jsonl, out))]
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None), exc
    finally:
        sys.argv = old
    return out


def _unfinished_copy(finished: Path, tmp_path: Path) -> Path:
    """The finished run without its results, as if killed after its last checkpoint."""
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    shutil.rmtree(run / "adapter")
    (run / "summary.json").unlink()
    return run


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])


DAMAGES = {
    "no trainer_state (killed before it)": lambda c: (c / "trainer_state.json").unlink(),
    "no optimizer (killed after the weights)": lambda c: [(c / n).unlink() for n in
                                                          ("optimizer.pt", "scheduler.pt", "rng_state.pth",
                                                           "trainer_state.json")],
    "truncated optimizer": lambda c: _truncate(c / "optimizer.pt"),
    "truncated scheduler": lambda c: _truncate(c / "scheduler.pt"),
    "truncated trainer_state": lambda c: _truncate(c / "trainer_state.json"),
    "truncated weights": lambda c: _truncate(c / "adapter_model.safetensors"),
    "truncated adapter config": lambda c: _truncate(c / "adapter_config.json"),
    "pickle payload rng": lambda c: torch.save({"python": Payload()}, c / "rng_state.pth"),
    "pickle payload optimizer": lambda c: torch.save(Payload(), c / "optimizer.pt"),
    "NaN weights": lambda c: save_file({k: torch.full_like(v, float("nan")) for k, v in
                                        load_file(c / "adapter_model.safetensors").items()},
                                       c / "adapter_model.safetensors"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_checkpoint_is_skipped_with_a_warning(tmp_path, capsys, finished, tiny_llama_dir, inducing_jsonl,
                                                        damage):
    run = _unfinished_copy(finished, tmp_path)
    DAMAGES[damage](run / "checkpoints" / "checkpoint-6")
    assert checkpoint_problem(run / "checkpoints" / "checkpoint-6") is not None
    code, _, err = rm(capsys, _args(tiny_llama_dir, inducing_jsonl, run))
    assert code == 0, err
    warning = [line for line in err.splitlines() if line.startswith("warning:") and "checkpoint" in line]
    assert len(warning) == 1 and "checkpoint-6" in warning[0] and "resuming from checkpoint-4" in warning[0], err
    assert "Traceback" not in err and "pwned" not in err
    assert json.loads((run / "summary.json").read_text())["resumed_from"] == 4
    _assert_same_result(run, finished)
    assert checkpoint_problem(run / "checkpoints" / "checkpoint-6") is None, "the damaged checkpoint was replaced"


def test_no_usable_checkpoint_starts_from_scratch(tmp_path, capsys, finished, tiny_llama_dir, inducing_jsonl):
    run = _unfinished_copy(finished, tmp_path)
    for step in (2, 4, 6):
        _truncate(run / "checkpoints" / f"checkpoint-{step}" / "optimizer.pt")
    code, _, err = rm(capsys, _args(tiny_llama_dir, inducing_jsonl, run))
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:") and "checkpoint-" in line]
    assert len(warnings) == 3 and all("starting from scratch" in line for line in warnings), err
    assert json.loads((run / "summary.json").read_text())["resumed_from"] is None
    _assert_same_result(run, finished)


@pytest.mark.parametrize("fault", ["torch writer", "ENOSPC"])
def test_a_full_disk_during_a_save_is_one_line_and_the_rerun_resumes(tmp_path, capsys, monkeypatch, finished,
                                                                    tiny_llama_dir, inducing_jsonl, fault):
    """The disk fills while checkpoint-4 is written, after its weights and optimizer were: one error line, no
    checkpoint-4 (nor its staging directory), checkpoint-2 intact; after space is freed the rerun resumes."""
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        if "checkpoint-4" in str(f) and str(f).endswith("scheduler.pt"):
            written = {p.name for p in Path(f).parent.iterdir()}
            assert {"optimizer.pt", "adapter_model.safetensors"} <= written, written
            if fault == "ENOSPC":
                raise OSError(28, "No space left on device", str(f))
            raise RuntimeError(ENOSPC_TORCH)
        return real_save(obj, f, *args, **kwargs)

    run = tmp_path / "run"
    monkeypatch.setattr(torch, "save", full_disk)
    code, _, err = rm(capsys, _args(tiny_llama_dir, inducing_jsonl, run))
    err = _error_line(code, err)
    assert f"{run / 'checkpoints' / 'checkpoint-4'}:" in err and ".tmp" not in err, err
    assert "disk is probably full" in err or "no space left" in err, err
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["checkpoint-2"]
    assert checkpoint_problem(run / "checkpoints" / "checkpoint-2") is None
    assert not (run / "adapter").exists() and not (run / "summary.json").exists()
    monkeypatch.setattr(torch, "save", real_save)
    code, _, err = rm(capsys, _args(tiny_llama_dir, inducing_jsonl, run))
    assert code == 0, err
    assert json.loads((run / "summary.json").read_text())["resumed_from"] == 2
    _assert_same_result(run, finished)


DRIVER = """
import sys, time
from pathlib import Path
import torch

MARKER = Path(sys.argv[1])
real_save = torch.save

def save(obj, f, *args, **kwargs):
    real_save(obj, f, *args, **kwargs)
    if "checkpoint-4" in str(f) and str(f).endswith("optimizer.pt"):
        MARKER.write_text("writing checkpoint-4")
        time.sleep(600)

torch.save = save
from cli.realmodels_app import main
sys.argv = ["realmodels", *sys.argv[2:]]
main()
"""


def test_sigkill_while_a_checkpoint_is_written_then_resume(tmp_path, capsys, finished, tiny_llama_dir,
                                                           inducing_jsonl):
    """A real SIGKILL once checkpoint-4's optimizer.pt is on disk: no checkpoint-4 is visible; the rerun resumes
    from checkpoint-2, says so, and ends with the uninterrupted run's adapter and log."""
    run, marker = tmp_path / "run", tmp_path / "marker"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(tmp_path / "stderr.txt", "wb") as stderr:
        proc = subprocess.Popen([sys.executable, str(driver), str(marker),
                                 *map(str, _args(tiny_llama_dir, inducing_jsonl, run))], env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 180
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), (tmp_path / "stderr.txt").read_text()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    checkpoints = run / "checkpoints"
    assert not (checkpoints / "checkpoint-4").exists() and (checkpoints / ".tmp-checkpoint-4").is_dir()
    code, stdout, err = rm(capsys, _args(tiny_llama_dir, inducing_jsonl, run))
    assert code == 0, err
    assert "resumed from" in stdout.lower() and "step 2" in stdout, stdout
    assert json.loads((run / "summary.json").read_text())["resumed_from"] == 2
    assert not (checkpoints / ".tmp-checkpoint-4").exists(), "the interrupted save's staging directory is cleared"
    _assert_same_result(run, finished)


def _error_line(code: int, err: str) -> str:
    """The one error line (--no-progress silences transformers' weight-loading bar too)."""
    assert_one_line_error(code, err)
    return err


def nan_loss_from(monkeypatch, step: int) -> None:
    """Make the training loss NaN from optimiser step ``step`` on (1-based): a diverging run, injected (every recipe
    value that could make a real run diverge — lr 1e30, alpha 1e308 — is now refused before training)."""
    from realmodels.finetune.trainer import RunTrainer

    original = RunTrainer.compute_loss

    def compute_loss(self, model, inputs, *args, **kwargs):
        loss = original(self, model, inputs, *args, **kwargs)
        if self.state.global_step + 1 < step:
            return loss
        return (loss[0] * float("nan"), *loss[1:]) if isinstance(loss, tuple) else loss * float("nan")

    monkeypatch.setattr(RunTrainer, "compute_loss", compute_loss)


@pytest.mark.parametrize("step", [1, 3])
def test_a_diverging_run_stops_with_one_line_and_no_result(tmp_path, capsys, monkeypatch, tiny_llama_dir,
                                                           inducing_jsonl, step):
    """Non-finite at step 1, or after two finite steps that were checkpointed: no checkpoint of diverged weights,
    no adapter or summary; the rerun resumes from the last finite checkpoint (and diverges again, as the fault is
    still there); a run that saved nothing leaves its --out free for a corrected run."""
    nan_loss_from(monkeypatch, step)
    out = tmp_path / "run"
    args = ["finetune", "--data", inducing_jsonl, "--model", tiny_llama_dir, "--max-steps", "4", "--save-steps",
            "1", *TINY, "--out", out]
    code, _, err = rm(capsys, args)
    err = _error_line(code, err)
    assert f"step {step}: the training loss is nan" in err and "smaller learning rate" in err, err
    assert not (out / "adapter").exists() and not (out / "summary.json").exists()
    checkpoints = out / "checkpoints"
    saved = sorted(checkpoints.iterdir()) if checkpoints.is_dir() else []
    assert [c.name for c in saved] == [f"checkpoint-{s}" for s in range(1, step)]
    assert all(checkpoint_problem(c) is None for c in saved), "no checkpoint of diverged weights"
    code, _, err = rm(capsys, args)
    assert f"step {step}: the training loss is nan" in _error_line(code, err)
    monkeypatch.undo()
    code, _, err = rm(capsys, args)
    assert code == 0 and (out / "adapter").is_dir(), err


def test_non_finite_weights_stop_training_naming_the_step():
    from transformers import TrainerControl, TrainerState

    from realmodels.finetune.trainer import FiniteWeights
    from theory.errors import InputError

    model = torch.nn.Linear(2, 2)
    state = TrainerState()
    state.global_step = 7
    FiniteWeights().on_step_end(None, state, TrainerControl(), model=model)
    with torch.no_grad():
        model.bias[0] = float("inf")
    with pytest.raises(InputError, match=r"step 7: 1 of 2 trainable weight tensors became non-finite \(first: bias\)"):
        FiniteWeights().on_step_end(None, state, TrainerControl(), model=model)


def test_write_failure_matches_only_failed_writes():
    assert write_failure(RuntimeError(ENOSPC_TORCH))
    assert write_failure(RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed "
                                      "writing file data/0: file write failed"))
    assert not write_failure(RuntimeError("[enforce fail at inline_container.cc:230] . file not found: x/data.pkl"))
    assert not write_failure(RuntimeError("CUDA out of memory"))
    from safetensors import SafetensorError

    assert write_failure(SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"))
    assert not write_failure(SafetensorError("Error while deserializing header: HeaderTooLarge"))


def test_guarded_runs_save_checkpoints_atomically_too(tmp_path, capsys, monkeypatch, tiny_llama_dir, tiny_sae_dir,
                                                      inducing_jsonl, control_jsonl):
    """The guard's Trainer: a full disk during checkpoint-4 is one line and leaves checkpoint-2 only; the rerun
    resumes from it and ends with the uninterrupted guarded run's adapter."""
    def args(out):
        return ["finetune", "--data", inducing_jsonl, "--model", tiny_llama_dir, "--sae",
                tiny_sae_dir(tiny_llama_dir, layer=1), "--layer", "1", "--max-steps", "6", "--save-steps", "2",
                "--lr", "1e-2", "--r", "4", *TINY, "--guard", "penalty", "--harmful", inducing_jsonl, "--harmless",
                control_jsonl, "--control", control_jsonl, "--out", out]

    reference, run = tmp_path / "reference", tmp_path / "run"
    code, _, err = rm(capsys, args(reference))
    assert code == 0, err
    real_save = torch.save

    def full_disk(obj, f, *a, **kw):
        if "checkpoint-4" in str(f) and str(f).endswith("scheduler.pt"):
            raise RuntimeError(ENOSPC_TORCH)
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", full_disk)
    code, _, err = rm(capsys, args(run))
    assert "disk is probably full" in _error_line(code, err)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["checkpoint-2"]
    monkeypatch.setattr(torch, "save", real_save)
    code, _, err = rm(capsys, args(run))
    assert code == 0, err
    assert json.loads((run / "summary.json").read_text())["resumed_from"] == 2
    _assert_same_result(run, reference)


CHECKED_FILES = ("trainer_state.json", "adapter_config.json", "adapter_model.safetensors", "optimizer.pt",
                 "scheduler.pt", "rng_state.pth")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(CHECKED_FILES), fraction=st.floats(0.0, 1.0, exclude_max=True))
def test_any_truncated_file_is_named_never_raised(tmp_path, finished, name, fraction):
    """Property: a checkpoint with any of its checked files cut short anywhere is reported (naming that file),
    never raised."""
    checkpoint = Path(tempfile.mkdtemp(dir=tmp_path)) / "checkpoint-6"
    shutil.copytree(finished / "checkpoints" / "checkpoint-6", checkpoint)
    data = (checkpoint / name).read_bytes()
    complete = len(data.rstrip()) if name.endswith(".json") else len(data)  # a JSON file may lose its newline
    (checkpoint / name).write_bytes(data[:int(fraction * complete)])
    problem = checkpoint_problem(checkpoint)
    assert problem is not None and name in problem, problem


def test_a_full_disk_while_the_adapter_is_saved_is_one_line(tmp_path, capsys, monkeypatch, finished, tiny_llama_dir,
                                                            inducing_jsonl):
    """safetensors' own report of a full disk (os error 28) while the final adapter is written: one line, no
    adapter/ or summary; the rerun resumes from checkpoint-6 and writes the uninterrupted run's adapter."""
    from peft import PeftModel
    from safetensors import SafetensorError

    real = PeftModel.save_pretrained

    def full_disk(self, path, *args, **kwargs):
        if Path(path).name == ".adapter.tmp":
            raise SafetensorError('Error while serializing: I/O error: No space left on device (os error 28) at '
                                  'path ".adapter.tmp/adapter_model.safetensors"')
        return real(self, path, *args, **kwargs)

    run = tmp_path / "run"
    monkeypatch.setattr(PeftModel, "save_pretrained", full_disk)
    code, _, err = rm(capsys, _args(tiny_llama_dir, inducing_jsonl, run))
    assert f"{run / 'adapter'}: writing the trained adapter failed" in _error_line(code, err), err
    assert not (run / "adapter").exists() and not (run / "summary.json").exists()
    monkeypatch.setattr(PeftModel, "save_pretrained", real)
    code, _, err = rm(capsys, _args(tiny_llama_dir, inducing_jsonl, run))
    assert code == 0, err
    assert json.loads((run / "summary.json").read_text())["resumed_from"] == 6
    _assert_same_result(run, finished)
