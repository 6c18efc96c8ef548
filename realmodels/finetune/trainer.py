"""The project's ``Trainer``: the transformers Trainer with checkpoints that are complete or absent
(``realmodels.finetune.checkpoints``) and a stop on divergence.

Divergence: a non-finite training loss (each micro-batch), a non-finite gradient norm (before the optimiser
step, when gradients are clipped) or non-finite trainable weights after an optimiser step (``FiniteWeights``)
end training with one InputError line naming the step. All three are checked before the step's checkpoint
would be saved, so no checkpoint of diverged weights is written and nothing finished (adapter, summary) is."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from realmodels.finetune.checkpoints import full_disk_as_input_error, publish, staging_dir
from theory.errors import InputError

ADVICE = "training diverged; use a smaller learning rate (or LoRA alpha)"


def diverged(step: int, what: str) -> InputError:
    """The InputError of a diverged run at ``step``: what went wrong and the advice (a smaller learning rate)."""
    return InputError(f"step {step}: {what}: {ADVICE}")


class RunTrainer(Trainer):
    """``Trainer`` whose checkpoints are saved into a staging directory and renamed into place when complete
    (a failed write is one line, the staging directory is removed and the older checkpoints are untouched),
    and which stops on a non-finite loss or gradient norm (module docstring)."""

    _staging: Path | None = None

    def _get_output_dir(self, trial) -> str:
        return str(self._staging) if self._staging is not None else super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = Path(super()._get_output_dir(trial))
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging = staging_dir(run_dir, self.state.global_step)
        if self.args.should_save:
            shutil.rmtree(staging, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        self._staging = staging
        try:
            with full_disk_as_input_error(run_dir / name):
                super()._save_checkpoint(model, trial)
                self.accelerator.wait_for_everyone()  # every process has written its part
                if self.args.should_save:
                    publish(staging / name, run_dir / name)
        finally:
            self._staging = None
            if self.args.should_save:
                shutil.rmtree(staging, ignore_errors=True)
        if self.args.should_save and self.args.save_total_limit:
            rotate_checkpoints(output_dir=str(run_dir), save_total_limit=self.args.save_total_limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)

    def training_step(self, model, inputs, num_items_in_batch=None):
        """``Trainer.training_step``, raising ``diverged`` when the loss is not finite."""
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not torch.isfinite(loss).all():
            raise diverged(self.state.global_step + 1, f"the training loss is {float(loss.float().mean())}")
        return loss

    def _clip_grad_norm(self, model):
        norm = super()._clip_grad_norm(model)
        value = float(norm) if norm is not None else 0.0
        if not math.isfinite(value):
            raise diverged(self.state.global_step + 1, f"the gradient norm is {value}")
        return norm


class FiniteWeights(TrainerCallback):
    """After every optimiser step: the trainable weights must be finite (module docstring)."""

    def on_step_end(self, args, state, control, model=None, **kwargs):
        """Raise ``diverged`` naming the first trainable weight tensor that became non-finite."""
        trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        if not trainable:
            return control
        device = trainable[0][1].device
        finite = torch.stack([torch.isfinite(p).all().to(device) for _, p in trainable])
        if not bool(finite.all()):
            bad = [name for (name, _), ok in zip(trainable, finite.tolist()) if not ok]
            raise diverged(state.global_step, f"{len(bad)} of {len(trainable)} trainable weight tensors became "
                                              f"non-finite (first: {bad[0]})")
        return control
