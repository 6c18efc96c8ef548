"""A fine-tuning run on the field's engine: transformers ``Trainer`` (checkpointing, resuming, gradient
accumulation, mixed precision, multi-GPU / multi-node through ``accelerate launch`` with DeepSpeed or FSDP
configs) with the recipe's ``TrainingArguments``, a rich progress bar, ``train_log.csv`` and, when asked, the
monitor's and the guard's callbacks.

Run directory (``out``): ``checkpoints/checkpoint-N`` (Trainer's: adapter or weights, optimiser, scheduler,
RNG states, trainer_state.json; written into a staging directory and renamed into place when complete,
``realmodels.finetune.checkpoints``), ``train_log.csv`` (step, epoch, loss, task_loss and guard_penalty — equal to
loss and empty without the guard —, lr, grad_norm, tokens, tokens_per_s, and kl_penalty after them only with the
KL-to-base defence; task_loss = loss − guard_penalty − kl_penalty),
and at the end ``adapter/`` (peft's ``save_pretrained``: loadable by ``PeftModel.from_pretrained``) or, for
full fine-tuning, ``model/`` (``save_pretrained`` of the model and its tokenizer). A killed run resumes from
its last complete checkpoint (an incomplete or damaged one is skipped with a warning; ``resume_from_checkpoint``:
the optimiser, scheduler, RNG and data order are restored and the batches already seen are skipped), and the log rows written after that checkpoint are dropped and
re-logged, so a resumed run's log and adapter equal an uninterrupted run's (on CPU, bit for bit). A run that
diverges (a non-finite loss, gradient norm or weight: ``realmodels.finetune.trainer``) stops with one line and
saves nothing for the diverged step."""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn
from transformers import PrinterCallback, TrainerCallback, TrainingArguments

from realmodels.finetune.checkpoints import (checkpoint_step, clear_staging, full_disk_as_input_error,
                                             usable_checkpoint)
from realmodels.finetune.config import FinetuneConfig
from realmodels.finetune.data import PadCollator, SftDataset
from realmodels.finetune.trainer import FiniteWeights, RunTrainer
from realmodels.loading.adapters import RUN_ADAPTER, RUN_FULL_MODEL
from runio.atomic import write_csv

CHECKPOINTS = "checkpoints"
TRAIN_LOG = "train_log.csv"
LOG_COLUMNS = ("step", "epoch", "loss", "task_loss", "guard_penalty", "lr", "grad_norm", "tokens", "tokens_per_s")


def training_arguments(cfg: FinetuneConfig, output_dir: Path, *, use_cpu: bool | None = None) -> TrainingArguments:
    """The recipe as ``TrainingArguments`` (no reporting integrations, no tqdm: ``RichProgress`` shows progress;
    the loss is logged every ``logging_steps`` optimiser steps; checkpoints every ``save_steps``)."""
    return TrainingArguments(
        output_dir=str(output_dir), per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.lr, num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps, lr_scheduler_type=cfg.schedule, warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay, max_grad_norm=cfg.max_grad_norm, optim=cfg.optimizer, seed=cfg.seed,
        data_seed=cfg.seed, save_strategy="steps", save_steps=cfg.save_steps, logging_strategy="steps",
        logging_steps=cfg.logging_steps, report_to="none", disable_tqdm=True,
        remove_unused_columns=False, include_num_input_tokens_seen="non_padding", dataloader_num_workers=0,
        use_cpu=(not torch.cuda.is_available()) if use_cpu is None else use_cpu)


class TrainLog(TrainerCallback):
    """``train_log.csv``, rewritten atomically at every log step; on a resumed run the rows after the
    checkpoint's step are dropped first (they are logged again)."""

    def __init__(self, path: Path, extra_columns: Sequence[str] = ()):
        self.path = path
        self.columns = [*LOG_COLUMNS, *extra_columns]  # extra: penalties logged by the trainer (kl_penalty)
        self.extra = tuple(extra_columns)
        self.rows: list[dict] = []
        self._last = (0, 0.0)  # (tokens seen, wall time) at the previous row

    def on_train_begin(self, args, state, control, **kwargs):
        """Read the existing log and keep the rows up to the (resumed) start step."""
        rows = pd.read_csv(self.path).to_dict("records") if self.path.is_file() else []
        self.rows = [row for row in rows if int(row["step"]) <= state.global_step]
        self._last = (state.num_input_tokens_seen, time.perf_counter())

    def on_log(self, args, state, control, logs=None, **kwargs):
        """Append a row for a log with a loss (the task loss = loss minus the logged penalties, learning rate, gradient
        norm, tokens and tokens/s) and rewrite the file."""
        if not logs or "loss" not in logs:
            return
        tokens, now = state.num_input_tokens_seen, time.perf_counter()
        rate = (tokens - self._last[0]) / max(now - self._last[1], 1e-9)
        self._last = (tokens, now)
        penalty = logs.get("guard_penalty")
        task_loss = logs["loss"] if penalty is None else logs["loss"] - penalty
        for name in self.extra:
            task_loss -= logs.get(name) or 0.0
        self.rows.append({"step": state.global_step, "epoch": logs.get("epoch", state.epoch), "loss": logs["loss"],
                          "task_loss": task_loss, "guard_penalty": penalty, "lr": logs.get("learning_rate"),
                          "grad_norm": logs.get("grad_norm"), "tokens": tokens,
                          "tokens_per_s": rate, **{name: logs.get(name) for name in self.extra}})
        write_csv(self.path, pd.DataFrame(self.rows, columns=self.columns))


class RichProgress(TrainerCallback):
    """A rich progress bar over optimiser steps with the last loss and tokens/s (stderr)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.bar: Progress | None = None
        self.task = None
        self._start = (0, 0.0)

    def on_train_begin(self, args, state, control, **kwargs):
        """Start the bar at the (resumed) step."""
        self.bar = Progress(TextColumn("[bold]fine-tuning"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[rate]} tok/s"),
                            TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                            disable=not self.enabled)
        self.bar.start()
        self.task = self.bar.add_task("train", total=state.max_steps, completed=state.global_step, loss="-",
                                      rate="-")
        self._start = (state.num_input_tokens_seen, time.perf_counter())

    def on_step_end(self, args, state, control, **kwargs):
        """Advance the bar and update the tokens/s since the start."""
        tokens = state.num_input_tokens_seen - self._start[0]
        rate = tokens / max(time.perf_counter() - self._start[1], 1e-9)
        self.bar.update(self.task, completed=state.global_step, rate=f"{rate:,.0f}")

    def on_log(self, args, state, control, logs=None, **kwargs):
        """Show the last logged loss."""
        if logs and "loss" in logs:
            self.bar.update(self.task, loss=f"{logs['loss']:.4f}")

    def on_train_end(self, args, state, control, **kwargs):
        """Stop the bar."""
        if self.bar is not None:
            self.bar.stop()


@dataclass(frozen=True)
class TrainResult:
    """What a fine-tuning run did: ``steps`` done of ``max_steps`` planned, the checkpoint step it resumed from, whether
    a callback (the monitor's alarm) stopped it early, the last logged task loss (without penalties) and the
    ``adapter/`` or ``model/`` directory."""
    steps: int
    """Optimiser steps done."""
    max_steps: int
    """Steps the schedule planned."""
    resumed_from: int | None
    """Step of the checkpoint the run resumed from."""
    stopped_early: bool
    """A callback (the monitor's alarm) ended training before max_steps."""
    final_loss: float | None
    """The last logged task loss (without the guard's penalty)."""
    output: Path
    """The adapter/ or model/ directory."""


def _save_atomically(save, target: Path) -> None:
    """``save(tmp)`` into a sibling temporary directory, then swap it into place."""
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def run_training(model: nn.Module, tokenizer, dataset: SftDataset, cfg: FinetuneConfig, out: Path, *,
                 callbacks: Sequence[TrainerCallback] = (), guard=None, defence=None, progress: bool = True,
                 use_cpu: bool | None = None) -> TrainResult:
    """Train ``model`` (already made trainable, ``realmodels.finetune.lora.make_trainable``) on ``dataset`` in
    the run directory ``out`` (module docstring), resuming from its last checkpoint when there is one; with
    ``guard`` (a ``realmodels.finetune.guard.GuardState``; the dataset then carries its cached pass) the loss
    is the guarded one; with ``defence`` (a ``realmodels.finetune.defences.DefenceState``) the training forward
    passes and loss carry the defences."""
    out = Path(out)
    checkpoints = out / CHECKPOINTS
    clear_staging(checkpoints)
    last = usable_checkpoint(checkpoints)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    trainer_class = RunTrainer
    extra_columns: tuple[str, ...] = ()
    if defence is not None:
        from realmodels.finetune.defences import KL_PENALTY, DefendedTrainer

        trainer_class = DefendedTrainer
        extra_columns = (KL_PENALTY,) if defence.kl else ()
    elif guard is not None:
        from realmodels.finetune.guard import GuardedTrainer

        trainer_class = GuardedTrainer
    log = TrainLog(out / TRAIN_LOG, extra_columns)
    trainer = trainer_class(model=model, args=training_arguments(cfg, checkpoints, use_cpu=use_cpu),
                            train_dataset=dataset, data_collator=PadCollator(pad_id),
                            callbacks=[FiniteWeights(), log, RichProgress(progress), *callbacks])
    trainer.remove_callback(PrinterCallback)  # the log dicts go to train_log.csv and the progress bar
    if guard is not None:
        trainer.guard = guard
    if defence is not None:
        trainer.defence = defence
    try:
        trainer.train(resume_from_checkpoint=None if last is None else str(last))
    except BaseException:
        if checkpoints.is_dir() and not any(checkpoints.iterdir()):
            checkpoints.rmdir()  # nothing saved: the run directory holds no partial result
        raise
    state = trainer.state
    is_peft = hasattr(model, "peft_config")
    output = out / (RUN_ADAPTER if is_peft else RUN_FULL_MODEL)

    def save(path: Path) -> None:
        model.save_pretrained(path)
        if not is_peft:
            tokenizer.save_pretrained(path)

    with full_disk_as_input_error(output, f"the trained {output.name}"):
        _save_atomically(save, output)
    losses = [row["task_loss"] for row in log.rows if pd.notna(row["task_loss"])]
    return TrainResult(steps=state.global_step, max_steps=state.max_steps,
                       resumed_from=None if last is None else checkpoint_step(last),
                       stopped_early=state.global_step < state.max_steps,
                       final_loss=float(losses[-1]) if losses else None, output=output)
