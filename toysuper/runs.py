"""A toy study's run directory and what its runner returns (``toysuper.runners``): the config resolved before
anything is written, the pre-trained toy model (reused when a previous run saved it, else trained with a progress
bar and saved atomically, so a run killed after training does not train again), the run's result file (computed,
or read back from a run that already finished) and ``ToyRun``, the result object.

trained_model.pt holds ``TrainResult.payload()``: the model's tensors and its loss record, so that a run
resumed after a kill writes the same summary as one that was never interrupted. A file of an older version
(a bare state dict, no losses) still loads, with a warning; a damaged one is an InputError naming it."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TypeVar

import torch

from runio.atomic import read_json, save_torch
from runio.console import Log, progress_bar
from runio.rundir import ALREADY_FINISHED, RunDir, default_run_dir
from theory.configs import merge, strict_from_dict, to_dict
from theory.errors import ParamError
from toysuper.config import ModelConfig, TrainConfig
from toysuper.model import ToyModel
from toysuper.train import TrainResult, train

if TYPE_CHECKING:
    import pandas as pd

MODEL_KEY = "trained_model.pt"
SUMMARY = "summary.json"
C = TypeVar("C")


def resolve(cls: type[C], config: C | Mapping | None) -> C:
    """``config`` as a ``cls``: itself; None -> the defaults; a mapping -> the defaults updated with it (nested
    tables as dicts, None values ignored), validated strictly: an unknown key or a bad value is an InputError."""
    if config is None:
        return cls()
    if isinstance(config, cls):
        return config
    if isinstance(config, Mapping):
        return strict_from_dict(cls, merge(to_dict(cls()), dict(config)))
    raise ParamError(f"`config` must be a {cls.__name__} or a mapping of its fields, got {type(config).__name__}")


def run_path(out: str | Path | None, study: str) -> Path:
    """``out`` as a Path; None -> runs/<study>-<timestamp>."""
    return Path(out) if out is not None else default_run_dir(prefix=f"{study}-")


@dataclass
class ToyRun:
    """A finished toy run: ``path`` (its run directory), ``summary`` (what its result JSON holds) and
    ``already_finished`` (True when the directory held the result before this call: nothing was recomputed).
    Subclasses name their ``TABLES`` (``<name>.csv``) and ``FIGURES`` (``<name>.png``/``.svg``) in ``path``."""

    path: Path
    summary: dict
    already_finished: bool = False

    TABLES: ClassVar[tuple[str, ...]] = ()
    FIGURES: ClassVar[tuple[str, ...]] = ()

    def table(self, name: str) -> pd.DataFrame:
        """The table ``name`` as the run wrote it (its ``<name>.csv`` read back: the same for a fresh and a resumed
        run)."""
        import pandas as pd

        if name not in self.TABLES:
            raise KeyError(f"{type(self).__name__} has no table {name!r} (tables: {', '.join(self.TABLES) or 'none'})")
        return pd.read_csv(self.path / f"{name}.csv")

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table of the run, by name."""
        return {name: self.table(name) for name in self.TABLES}

    @property
    def figures(self) -> dict[str, Path]:
        """Every figure of the run, by name: its PNG file (an SVG lies beside it)."""
        return {name: self.path / f"{name}.png" for name in self.FIGURES}


def load_trained(path: Path, model_config: ModelConfig) -> TrainResult | ToyModel:
    """The TrainResult saved in ``path``, or only its ToyModel from a file of an older version."""
    try:
        payload = torch.load(path, weights_only=True)
        legacy = isinstance(payload, dict) and "W" in payload
        loaded = ToyModel.from_state_dict(payload) if legacy else TrainResult.from_payload(payload)
    except OSError:
        raise
    except Exception as exc:  # a truncated zip, a foreign pickle, missing keys: the file is not what we wrote
        raise ParamError(f"{path} is damaged (not a trained model: {type(exc).__name__}); delete it and rerun "
                         "with the same `out` to retrain") from None
    model = loaded if legacy else loaded.model
    expected = (model_config.n_instances, model_config.n_features, model_config.n_hidden)
    if tuple(model.W.shape) != expected:
        raise ParamError(f"{path} holds a model of shape {tuple(model.W.shape)}, not this run's {expected}; "
                         "delete it and rerun with the same `out` to retrain")
    if legacy:
        warnings.warn(f"{path} is from an older version (no training losses stored): summary.json's "
                      "final_train_loss will be null; delete it to retrain", stacklevel=2)
    return loaded


def train_or_reuse(run: RunDir, model_config: ModelConfig, train_config: TrainConfig,
                   log: Log) -> tuple[ToyModel, TrainResult | None]:
    """The trained model and its training record (None when reused from an older version's file)."""
    if run.done(MODEL_KEY):
        log("reusing the trained model from this run directory")
        loaded = load_trained(run.file(MODEL_KEY), model_config)
        return (loaded, None) if isinstance(loaded, ToyModel) else (loaded.model, loaded)
    with progress_bar("training", train_config.steps, refresh_every=max(1, train_config.steps // 200)) as update:
        def on_step(done: int, loss) -> None:
            update(done, None if loss is None else f"loss {loss.mean().item():.3e}")

        result = train(model_config, train_config, progress=on_step)
    save_torch(run.file(MODEL_KEY), result.payload())
    return result.model, result


def finished_or_compute(run: RunDir, name: str, compute: Callable[[], None], log: Log, *,
                        announce: bool = True) -> tuple[dict, bool]:
    """(the JSON file ``name`` of ``run`` read back, whether a previous run had already written it): ``compute()``
    writes it unless a previous run did (then, if ``announce``, ``log`` says so)."""
    finished = run.done(name)
    if not finished:
        compute()
    elif announce:
        log(ALREADY_FINISHED)
    return read_json(run.file(name)), finished
