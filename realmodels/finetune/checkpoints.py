"""Trainer checkpoints that are either complete or absent, and the choice of the checkpoint a run resumes from.

Saving: the Trainer writes ``checkpoint-N`` into a staging directory ``.tmp-checkpoint-N/checkpoint-N`` beside
the others; its files are flushed to disk and it is renamed to ``checkpoint-N`` only once everything is written
(``publish``). A kill or a full disk during a save leaves at most a staging directory, which no resume looks at
and the next run deletes (``clear_staging``). A torch write that fails (its message is the serialiser's
``[enforce fail at inline_container.cc...] unexpected pos`` or ``file write failed``, or safetensors'
``os error 28``) is reported as a full disk (``write_failure``).

Resuming: ``usable_checkpoint`` takes the newest ``checkpoint-N`` whose files all load — every JSON file parses,
trainer_state.json holds step N, an adapter has its adapter_config.json, the weights (safetensors or ``.bin``)
load and are finite, every ``.pt`` / ``.pth`` (optimiser, scheduler, scaler, RNG states) loads with
``torch.load(weights_only=True)`` and the Trainer's allow-list (memory-mapped, and safetensors one tensor at a
time, so checking a large checkpoint does not hold it in memory) — and warns once for each newer one it skips (one line naming it and what is wrong)."""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

from theory.errors import InputError, ParamError, first_line

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
STAGING_PREFIX = ".tmp-"  # .tmp-checkpoint-N: a save in progress (or interrupted)
REPLACED_PREFIX = ".old-"  # .old-checkpoint-N: a damaged checkpoint-N being replaced by a new save
STATE_FILE = "trainer_state.json"
ADAPTER_CONFIG = "adapter_config.json"
WEIGHT_FILES = ("adapter_model.safetensors", "model.safetensors", "adapter_model.bin", "pytorch_model.bin")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
REQUIRED_STATES = ("optimizer.pt", "scheduler.pt")
WRITE_FAILURES = ("unexpected pos", "file write failed", "os error 28", "No space left on device")


def checkpoint_step(path: Path) -> int | None:
    """The step N of a ``checkpoint-N`` directory, None for any other name."""
    match = CHECKPOINT.match(Path(path).name)
    return int(match.group(1)) if match else None


def clear_staging(checkpoints: Path) -> None:
    """Delete what interrupted saves left in ``checkpoints`` (staging and replaced directories)."""
    if not checkpoints.is_dir():
        return
    for entry in checkpoints.iterdir():
        if entry.is_dir() and entry.name.startswith((STAGING_PREFIX, REPLACED_PREFIX)):
            shutil.rmtree(entry, ignore_errors=True)


def staging_dir(checkpoints: Path, step: int) -> Path:
    """The run directory the Trainer saves step ``step`` into: its checkpoint is ``<this>/checkpoint-<step>``."""
    return checkpoints / f"{STAGING_PREFIX}checkpoint-{step}"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(saved: Path, target: Path) -> None:
    """Flush every file of the complete checkpoint ``saved`` to disk, then rename it to ``target`` (a damaged
    ``target`` left by an older save is replaced), and flush the directory entry."""
    for file in sorted(saved.rglob("*")):
        if file.is_file():
            _fsync(file)
    replaced = target.with_name(REPLACED_PREFIX + target.name)
    if target.exists():
        shutil.rmtree(replaced, ignore_errors=True)
        target.rename(replaced)
    saved.rename(target)
    _fsync(target.parent)
    shutil.rmtree(replaced, ignore_errors=True)


def write_failure(exc: BaseException) -> bool:
    """True when ``exc`` is torch's or safetensors' report of a failed file write (module docstring)."""
    text = str(exc)
    torch_write = "inline_container.cc" in text and any(marker in text for marker in WRITE_FAILURES[:2])
    return torch_write or (type(exc).__name__ == "SafetensorError" and any(m in text for m in WRITE_FAILURES[2:]))


@contextmanager
def full_disk_as_input_error(target: Path, what: str = "the checkpoint"):
    """A failed write while saving ``target`` (``what``; ``write_failure``) becomes one InputError line, an OSError
    (a full disk, no permission) is re-raised naming ``target``; any other error passes unchanged."""
    try:
        yield
    except OSError as exc:  # about a file in the staging directory: name the checkpoint instead
        if exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(target)) from exc
    except Exception as exc:
        if isinstance(exc, InputError) or not write_failure(exc):
            raise
        raise ParamError(f"{target}: writing {what} failed ({first_line(exc)}): the disk is probably full; free some space "
                         "and rerun with the same `out` to resume from the last complete checkpoint") from None


def _finite_weights(path: Path) -> bool:
    """Whether every floating tensor in the weight file ``path`` is finite (raises when the file does not load)."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(path, framework="pt") as weights:
            return all(_finite(weights.get_tensor(key)) for key in weights.keys())
    return all(_finite(t) for t in torch.load(path, map_location="cpu", weights_only=True, mmap=True).values())


def _finite(tensor) -> bool:
    import torch

    return not tensor.is_floating_point() or bool(torch.isfinite(tensor).all())


def _weight_files(checkpoint: Path) -> list[Path]:
    for name in WEIGHT_FILES:
        if (checkpoint / name).is_file():
            return [checkpoint / name]
    for name in WEIGHT_INDEXES:
        if (checkpoint / name).is_file():
            shards = sorted(set(json.loads((checkpoint / name).read_text())["weight_map"].values()))
            return [checkpoint / shard for shard in shards]
    return []


def checkpoint_problem(checkpoint: Path) -> str | None:
    """What makes ``checkpoint`` unusable for a resume (module docstring), or None when every file loads."""
    import torch

    state = checkpoint / STATE_FILE
    if not state.is_file():
        return f"{STATE_FILE} is missing"
    for path in sorted(checkpoint.glob("*.json")):  # the state, the adapter's or model's config, weight indexes
        try:
            json.loads(path.read_text())
        except ValueError as exc:
            return f"{path.name} is damaged ({type(exc).__name__})"
    try:
        step = json.loads(state.read_text())["global_step"]
    except (KeyError, TypeError) as exc:
        return f"{STATE_FILE} is damaged ({type(exc).__name__})"
    if step != checkpoint_step(checkpoint):
        return f"{STATE_FILE} records step {step}"
    try:
        weights = _weight_files(checkpoint)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"its weight index is damaged ({type(exc).__name__})"
    if not weights:
        return "it holds no model weights"
    if weights[0].name.startswith("adapter_model") and not (checkpoint / ADAPTER_CONFIG).is_file():
        return f"{ADAPTER_CONFIG} is missing"
    has_subdirs = any(entry.is_dir() for entry in checkpoint.iterdir())  # DeepSpeed / FSDP keep states in folders
    missing = [name for name in REQUIRED_STATES if not has_subdirs and not (checkpoint / name).is_file()]
    if missing:
        return f"{missing[0]} is missing"
    for path in weights:
        try:
            finite = _finite_weights(path)
        except Exception as exc:  # a damaged file fails in the loader's own way (truncation, pickle payload...)
            return f"{path.name} does not load ({type(exc).__name__})"
        if not finite:
            return f"{path.name} holds NaN or infinite weights"
    from transformers.trainer_pt_utils import safe_globals  # the numpy types of the RNG states, as the Trainer

    for path in sorted([*checkpoint.glob("*.pt"), *checkpoint.glob("*.pth")]):
        try:
            with safe_globals():
                torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as exc:  # as above: truncated, not a torch file, or a payload weights_only refuses
            return f"{path.name} does not load ({type(exc).__name__})"
    return None


def usable_checkpoint(checkpoints: Path) -> Path | None:
    """The newest checkpoint in ``checkpoints`` without a ``checkpoint_problem`` (None: start from scratch); each
    newer one is skipped with a warning naming it, what is wrong and where the run resumes instead."""
    found = sorted((p for p in checkpoints.iterdir() if p.is_dir() and checkpoint_step(p) is not None),
                   key=checkpoint_step, reverse=True) if checkpoints.is_dir() else []
    skipped: list[tuple[Path, str]] = []
    chosen = None
    for checkpoint in found:
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            chosen = checkpoint
            break
        skipped.append((checkpoint, problem))
    instead = f"resuming from {chosen.name}" if chosen is not None else "starting from scratch"
    for checkpoint, problem in skipped:
        warnings.warn(f"skipping the incomplete or damaged checkpoint {checkpoint} ({problem}); {instead}",
                      stacklevel=2)
    return chosen
