"""The geometric guard: the toy study's two regularisers (``theory.regularise``) carried to a real model, on the
harmful SAE features H at the SAE's layer L.

Both use the base model's residual h⁰(x) at layer L on every training conversation, computed once before
training in a cached pass (one forward to layer L per conversation, no gradient; stored per token as the
|H| harmful pre-activations and the r coordinates along the harmful span: n_tokens × (|H| + r) floats), so
a training step never runs the base model again.

- ``penalty``: adds λ · mean_{assistant tokens} Σ_{h∈H} (z_h(h(x)) − z_h(h⁰(x)))² to the task loss, with
  z_h(h) = ⟨process(h), W_enc[:, h]⟩ + b_enc[h] the SAE's own pre-activation (``theory.regularise.squared_growth``,
  the toy growth penalty). Pre-activations, not activations: a JumpReLU feature that is off has no gradient,
  which is exactly when the penalty should keep it off. Cost per step: one (tokens × d × |H|) product and its
  backward.
- ``projection``: in the training forward pass the layer-L residual update is projected off S = span{d_h}:
  h ← h − P_S (h − h⁰) = h − ((h Q) − (h⁰ Q)) Qᵀ, Q an orthonormal basis of S (``theory.regularise.span_basis``).
  The task gradient reaching every adapter then has no component along S at layer L (∂h'/∂h = I − P_S), so to
  first order the update moves the harmful features only through the kernel's anisotropy (for an isotropic
  kernel, not at all). The deployed model runs without the hook. Cost per step: two (tokens × d × r) products.
- ``rise``: the penalty made one-sided, λ · mean_{assistant tokens} Σ_{h∈H} relu(z_h(h(x)) − z_h(h⁰(x)))²
  (``theory.regularise.one_sided_growth``): only rises of the harmful pre-activations are penalised.
- ``both``: penalty and projection together; the penalty is taken on the residual before the projection (the one the
  deployed model, which runs without the hook, computes)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from realmodels.data.activations import pad_right
from realmodels.data.chat import TokenizedChat
from realmodels.data.residual import residual_stream
from realmodels.finetune.config import GuardConfig
from realmodels.finetune.data import IGNORE_INDEX
from realmodels.finetune.trainer import RunTrainer
from realmodels.loading.bundle import ModelBundle
from realmodels.loading.placement import decoder_layers, input_device
from theory.regularise import one_sided_growth, span_basis, squared_growth

PRE = "guard_pre"  # per-token cached base pre-activations of H (seq, |H|)
COORDS = "guard_coords"  # per-token cached base coordinates along the harmful span (seq, r)


@dataclass
class GuardState:
    """What the guard needs on the model's device: the SAE and the harmful features' encoder columns
    (``enc`` (d, |H|), ``bias`` (|H|,)), the basis ``basis`` (d, r) of their decoder span, the layer."""

    sae: nn.Module
    enc: Tensor
    bias: Tensor
    basis: Tensor
    layer: int
    config: GuardConfig

    @classmethod
    def build(cls, bundle: ModelBundle, harmful: list[int], config: GuardConfig) -> GuardState:
        """The guard's state for ``bundle``'s SAE: the encoder columns and biases of the ``harmful`` features (float32)
        and an orthonormal basis of their decoder span."""
        index = torch.as_tensor(harmful, dtype=torch.long)
        sae = bundle.sae
        return cls(sae=sae, enc=sae.W_enc.detach()[:, index].float(), bias=sae.b_enc.detach()[index].float(),
                   basis=span_basis(sae.W_dec.detach()[index].float()), layer=bundle.layer, config=config)

    def preactivations(self, h: Tensor) -> Tensor:
        """z_H(h): (..., d) -> (..., |H|), differentiable in h."""
        return self.sae.process_sae_in(h).float() @ self.enc + self.bias

    @property
    def penalise(self) -> bool:
        """Whether the loss carries the growth penalty (kind penalty, both or rise, with a weight > 0)."""
        return self.config.kind in ("penalty", "both", "rise") and self.config.weight > 0

    @property
    def project(self) -> bool:
        """Whether the residual is projected (kind projection or both)."""
        return self.config.kind in ("projection", "both")


@torch.no_grad()
def guard_cache(bundle: ModelBundle, state: GuardState, chats: list[TokenizedChat], *,
                batch_size: int = 8) -> dict[str, list[Tensor]]:
    """The cached pass (module docstring): per conversation, ``guard_pre`` (seq, |H|) and ``guard_coords``
    (seq, r) of the base model's residual at the layer."""
    pad_id = bundle.tokenizer.pad_token_id if bundle.tokenizer.pad_token_id is not None else 0
    device = input_device(bundle.model)
    pre: list[Tensor] = [torch.empty(0)] * len(chats)
    coords: list[Tensor] = [torch.empty(0)] * len(chats)
    was_training = bundle.model.training
    bundle.model.eval()
    for lo in range(0, len(chats), batch_size):
        batch = chats[lo:lo + batch_size]
        ids, mask, _ = pad_right(batch, pad_id)
        resid = residual_stream(bundle.model, ids.to(device), mask.to(device), bundle.layer)
        z = state.preactivations(resid.to(state.enc.device)).cpu()
        c = (resid.to(state.basis.device).float() @ state.basis).cpu()
        for row, chat in enumerate(batch):
            pre[lo + row], coords[lo + row] = z[row, :len(chat.input_ids)], c[row, :len(chat.input_ids)]
    bundle.model.train(was_training)
    return {PRE: pre, COORDS: coords}


class GuardedTrainer(RunTrainer):
    """``RunTrainer`` (atomic checkpoints, stop on divergence) whose loss carries the guard (set ``guard`` before training); batches carry the cached
    ``guard_pre`` / ``guard_coords`` (``guard_cache``, padded by ``PadCollator``)."""

    guard: GuardState | None = None
    _penalty_since_log: float = 0.0  # penalty added since the last log row (summed over micro-batches)
    _logged_step: int | None = None  # step of the last row: the step training (re)started from before the first

    def log(self, logs: dict, *args, **kwargs) -> None:
        """Adds ``guard_penalty`` (the mean per optimiser step since the previous row, or since the step a resumed
        run restarted from) to a row with a loss, so ``train_log.csv`` separates the task loss from the penalty."""
        if "loss" in logs and self.guard is not None and self.guard.penalise:
            steps = max(self.state.global_step - (self._logged_step or 0), 1)
            logs = {**logs, "guard_penalty": self._penalty_since_log / steps}
            self._penalty_since_log, self._logged_step = 0.0, self.state.global_step
        super().log(logs, *args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The task loss, with the guard: the residual at the guard's layer projected back onto the base model's
        coordinates along the harmful span (``project``), and/or the penalty λ·Σ growth of the harmful
        pre-activations over the assistant tokens against the cached base ones (squared growth, or one-sided for
        ``rise``), divided as the task loss is. Without a guard, ``RunTrainer``'s loss."""
        guard = self.guard
        if self._logged_step is None:  # the first micro-batch of this (possibly resumed) training
            self._logged_step = self.state.global_step
        base_pre, base_coords = inputs.pop(PRE, None), inputs.pop(COORDS, None)
        if guard is None:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        captured: dict[str, Tensor] = {}

        def hook(module, args, output):
            h = output[0] if isinstance(output, tuple) else output
            captured["h"] = h  # the deployed model's residual: the penalty's argument
            if not guard.project:
                return None
            q = guard.basis.to(h.dtype)
            projected = h - (h @ q - base_coords.to(h.dtype)) @ q.T
            return (projected, *output[1:]) if isinstance(output, tuple) else projected

        handle = decoder_layers(model)[guard.layer].register_forward_hook(hook)
        try:
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True,
                                                 num_items_in_batch=num_items_in_batch)
        finally:
            handle.remove()
        if guard.penalise:
            assistant = inputs["labels"] != IGNORE_INDEX
            growth_of = one_sided_growth if guard.config.kind == "rise" else squared_growth
            growth = growth_of(guard.preactivations(captured["h"][assistant]),
                                    base_pre[assistant].to(guard.enc.device))
            scaled_for_ga = self.model_accepts_loss_kwargs and num_items_in_batch is not None
            denominator = num_items_in_batch if scaled_for_ga else assistant.sum().clamp_min(1)
            penalty = guard.config.weight * growth.sum() / denominator
            self._penalty_since_log += float(penalty.detach())
            loss = loss + penalty.to(loss.dtype)
        return (loss, outputs) if return_outputs else loss
