"""A toy command's run directory: the pre-trained toy model (reused when a previous run saved it, else trained
with a progress bar and saved atomically, so a run killed after training does not train again) and the run's
result file (computed, or shown from a run that already finished)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from rich.console import Console

from cli.progress import progress_bar
from runio.atomic import read_json, save_torch
from runio.rundir import RunDir
from toysuper.config import ModelConfig, TrainConfig
from toysuper.model import ToyModel
from toysuper.train import TrainResult, train

MODEL_KEY = "trained_model.pt"
ALREADY_FINISHED = "[green]already finished[/]: showing the saved summary (delete the directory to recompute)"


def train_or_reuse(run: RunDir, model_config: ModelConfig, train_config: TrainConfig,
                   console: Console) -> tuple[ToyModel, TrainResult | None]:
    """The trained model and its training record (None when the model was reused)."""
    if run.done(MODEL_KEY):
        console.print("reusing the trained model from this run directory")
        return ToyModel.from_state_dict(torch.load(run.file(MODEL_KEY))), None
    with progress_bar("training", train_config.steps, refresh_every=max(1, train_config.steps // 200)) as update:
        def on_step(done: int, loss) -> None:
            update(done, None if loss is None else f"loss {loss.mean().item():.3e}")

        result = train(model_config, train_config, progress=on_step)
    save_torch(run.file(MODEL_KEY), result.model.state_dict())
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
