"""The in-training defences of ``DefenceConfig``: each edits the training forward pass or adds to the training
loss only; the saved adapter (or model) runs without them.

- CAFT (concept-ablation fine-tuning, Casademunt et al. 2025): at layer L the residual h has a concept subspace
  S projected out entirely, h ← h − P_S h: ``direction``: S = span{u} at the direction file's layer
  (h − (h·û)û, ``theory.directions.project_out``); ``features``: S = span{d_h : h ∈ H}, the harmful SAE features'
  decoder rows, at the SAE's layer (h − (h Q) Qᵀ, Q an orthonormal basis, ``theory.regularise.span_basis``).
  Unlike the guard's projection (h − P_S (h − h⁰)) nothing of h along S survives, so the layers above never read
  S while training, and the loss's gradient with respect to the layer-L output has no component along S
  (∂h'/∂h = I − P_S): an adapter writing straight into it (layer L's MLP output projection) gets no update
  along S; the others only through the Jacobians between them and L.
- Preventative steering (Chen et al. 2025): h ← h + α û at the direction's layer (``theory.directions.steer``):
  the training data's push along û is supplied by the hook, so the weights need not learn it. α = 0 leaves h
  unchanged bit for bit.
- KL to the base model: + λ · Σ_t KL(p_base(·|x_<t) ‖ p_θ(·|x_<t)) / N over the assistant (labelled) positions t,
  N the labelled tokens of the optimiser step (the task loss's own normaliser under gradient accumulation, else
  the micro-batch's). The base distribution comes, without gradient and in eval mode, from the same model with the
  LoRA adapter disabled (peft ``disable_adapter``: no extra memory), or for full fine-tuning from a frozen copy of
  the base model made before training (twice the weights in memory; caching base log-probabilities would need
  tokens × vocabulary floats, more than a second copy for any real vocabulary). λ = 0 computes nothing.

The edits are residual hooks (``realmodels.intervene.hooks.edited``) entered around each training forward pass
only (never around the monitor's probes or a checkpoint save); several run in the order CAFT, steering."""

from __future__ import annotations

import copy
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from realmodels.finetune.config import DefenceConfig
from realmodels.finetune.data import IGNORE_INDEX
from realmodels.finetune.guard import GuardedTrainer
from realmodels.intervene.hooks import ablation_edit, edited, span_ablation_edit, steer_edit

KL_PENALTY = "kl_penalty"  # train_log.csv column of λ · KL (only when the KL penalty is on)


def direction_edit(vector: Tensor, *, steer_alpha: float | None) -> Callable[[Tensor], Tensor]:
    """With ``steer_alpha`` None: h ↦ h − (h·û)û (CAFT along the line); else h ↦ h + α û (steering)."""
    from theory.directions import unit

    if steer_alpha is None:
        return ablation_edit(vector)
    return steer_edit(unit(vector.to(torch.float64)), steer_alpha)


@dataclass
class DefenceState:
    """What the defences need while training: ``edits`` (layer, h ↦ h') applied in order in each training forward
    pass, the KL weight and, for full fine-tuning with the KL penalty, the frozen base model ``kl_base``."""

    config: DefenceConfig
    edits: list[tuple[int, Callable[[Tensor], Tensor]]] = field(default_factory=list)
    kl_base: nn.Module | None = None

    @classmethod
    def build(cls, config: DefenceConfig, *, base_model: nn.Module, full: bool, direction=None,
              caft_basis: Tensor | None = None, caft_layer: int | None = None) -> DefenceState:
        """The state for ``config``: ``direction`` (a ``realmodels.analysis.direction.Direction``) for caft =
        direction or steering; ``caft_basis`` (d, r) and ``caft_layer`` for caft = features. ``base_model`` is
        copied (frozen) when ``full`` fine-tuning carries the KL penalty; call this before training starts."""
        edits: list = []
        if config.caft == "features":
            edits.append((caft_layer, span_ablation_edit(caft_basis)))
        vector = None if direction is None else torch.tensor(direction.vector, dtype=torch.float64)
        if config.caft == "direction":
            edits.append((direction.layer, direction_edit(vector, steer_alpha=None)))
        if config.steers:
            edits.append((direction.layer, direction_edit(vector, steer_alpha=float(config.steer_alpha))))
        kl_base = None
        if config.kl_weight > 0 and full:
            kl_base = copy.deepcopy(base_model).eval().requires_grad_(False)
        return cls(config=config, edits=edits, kl_base=kl_base)

    @property
    def kl(self) -> bool:
        """Whether the KL penalty is on (``kl_weight`` > 0)."""
        return self.config.kl_weight > 0


def kl_to_base(logits: Tensor, base_logits: Tensor, labels: Tensor) -> Tensor:
    """Σ over labelled positions of KL(p_base ‖ p_θ) of the next-token distributions (shifted as the causal LM
    loss: logits at t predict labels at t + 1): logits, base_logits (batch, seq, vocab), labels (batch, seq)."""
    mask = labels[:, 1:] != IGNORE_INDEX
    log_p = torch.log_softmax(logits[:, :-1][mask].float(), dim=-1)
    log_base = torch.log_softmax(base_logits[:, :-1][mask].float(), dim=-1)
    return (log_base.exp() * (log_base - log_p)).sum()


class DefendedTrainer(GuardedTrainer):
    """``GuardedTrainer`` (the guard when one is set) whose training forward passes carry the defences (set
    ``defence`` before training): the residual edits around every forward pass, the KL penalty in the loss."""

    defence: DefenceState | None = None
    _kl_since_log: float = 0.0  # λ·KL added since the last log row (summed over micro-batches)
    _kl_logged_step: int | None = None  # step of the last row: the step training (re)started from before the first

    def log(self, logs: dict, *args, **kwargs) -> None:
        """Adds ``kl_penalty`` (the mean per optimiser step since the previous row, or since the step a resumed run
        restarted from) to a row with a loss."""
        if "loss" in logs and self.defence is not None and self.defence.kl:
            steps = max(self.state.global_step - (self._kl_logged_step or 0), 1)
            logs = {**logs, KL_PENALTY: self._kl_since_log / steps}
            self._kl_since_log, self._kl_logged_step = 0.0, self.state.global_step
        super().log(logs, *args, **kwargs)

    @torch.no_grad()
    def _base_logits(self, model, inputs: dict) -> Tensor:
        """The base model's logits on the batch (module docstring: adapter disabled, or the frozen copy)."""
        kwargs = {"input_ids": inputs["input_ids"], "attention_mask": inputs.get("attention_mask")}
        if self.defence.kl_base is not None:
            return self.defence.kl_base(**kwargs).logits
        unwrapped = self.accelerator.unwrap_model(model)
        was_training = unwrapped.training
        unwrapped.eval()
        try:
            with unwrapped.disable_adapter():
                return unwrapped(**kwargs).logits
        finally:
            unwrapped.train(was_training)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The task loss computed under the defence's residual edits, plus λ·KL to the base model's logits over the
        labelled tokens (divided as the task loss is) when the KL defence is on; without a defence,
        ``GuardedTrainer``'s loss."""
        defence = self.defence
        if self._kl_logged_step is None:  # the first micro-batch of this (possibly resumed) training
            self._kl_logged_step = self.state.global_step
        if defence is None:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        base_logits = self._base_logits(model, inputs) if defence.kl else None
        labels = inputs["labels"]
        with ExitStack() as stack:
            for layer, edit in defence.edits:
                stack.enter_context(edited(model, layer, edit))
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True,
                                                 num_items_in_batch=num_items_in_batch)
        if base_logits is not None:
            total = kl_to_base(outputs.logits, base_logits, labels)
            scaled_for_ga = self.model_accepts_loss_kwargs and num_items_in_batch is not None
            denominator = num_items_in_batch if scaled_for_ga else (labels[:, 1:] != IGNORE_INDEX).sum().clamp_min(1)
            penalty = defence.config.kl_weight * total / denominator
            self._kl_since_log += float(penalty.detach())
            loss = loss + penalty.to(loss.dtype)
        return (loss, outputs) if return_outputs else loss
