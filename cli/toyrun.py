"""A toy command's run directory: the pre-trained toy model (reused when a previous run saved it, else trained
with a progress bar and saved atomically, so a run killed after training does not train again) and the run's
result file (computed, or shown from a run that already finished).

trained_model.pt holds ``TrainResult.payload()``: the model's tensors and its loss record, so that a run
resumed after a kill writes the same summary as one that was never interrupted. A file of an older version
(a bare state dict, no losses) still loads, with a warning; a damaged one is an InputError naming it."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from rich.console import Console

from cli.progress import ALREADY_FINISHED, progress_bar
from runio.atomic import read_json, save_torch
from runio.rundir import RunDir
from theory.errors import InputError
from toysuper.config import ModelConfig, TrainConfig
from toysuper.model import ToyModel
from toysuper.train import TrainResult, train

MODEL_KEY = "trained_model.pt"


def load_trained(path: Path, model_config: ModelConfig) -> TrainResult | ToyModel:
    """The TrainResult saved in ``path``, or only its ToyModel from a file of an older version."""
    try:
        payload = torch.load(path, weights_only=True)
        legacy = isinstance(payload, dict) and "W" in payload
        loaded = ToyModel.from_state_dict(payload) if legacy else TrainResult.from_payload(payload)
    except OSError:
        raise
    except Exception as exc:  # a truncated zip, a foreign pickle, missing keys: the file is not what we wrote
        raise InputError(f"{path} is damaged (not a trained model: {type(exc).__name__}); delete it and rerun "
                         "with the same --out to retrain") from None
    model = loaded if legacy else loaded.model
    expected = (model_config.n_instances, model_config.n_features, model_config.n_hidden)
    if tuple(model.W.shape) != expected:
        raise InputError(f"{path} holds a model of shape {tuple(model.W.shape)}, not this run's {expected}; "
                         "delete it and rerun with the same --out to retrain")
    if legacy:
        warnings.warn(f"{path} is from an older version (no training losses stored): summary.json's "
                      "final_train_loss will be null; delete it to retrain", stacklevel=2)
    return loaded


def train_or_reuse(run: RunDir, model_config: ModelConfig, train_config: TrainConfig,
                   console: Console) -> tuple[ToyModel, TrainResult | None]:
    """The trained model and its training record (None when reused from an older version's file)."""
    if run.done(MODEL_KEY):
        console.print("reusing the trained model from this run directory")
        loaded = load_trained(run.file(MODEL_KEY), model_config)
        return (loaded, None) if isinstance(loaded, ToyModel) else (loaded.model, loaded)
    with progress_bar("training", train_config.steps, refresh_every=max(1, train_config.steps // 200)) as update:
        def on_step(done: int, loss) -> None:
            update(done, None if loss is None else f"loss {loss.mean().item():.3e}")

        result = train(model_config, train_config, progress=on_step)
    save_torch(run.file(MODEL_KEY), result.payload())
    return result.model, result


def finished_or_compute(run: RunDir, name: str, compute: Callable[[], None], console: Console, *,
                        announce: bool = True):
    """The JSON file ``name`` of ``run``, read back: ``compute()`` writes it unless a previous run already
    did (then, if ``announce``, the console says so)."""
    if not run.done(name):
        compute()
    elif announce:
        console.print(ALREADY_FINISHED)
    return read_json(run.file(name))
