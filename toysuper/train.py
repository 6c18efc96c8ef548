"""Pre-training of the toy model: closed-form gradients in four matmuls, torch's fused Adam(W) kernel.

For one instance, with h = x W, z = h Wᵀ + b, x̂ = ReLU(z), L = mean_{batch, features} I (x̂ - x)² and
s = 2 I / (B n) (per feature):

    G = ∂L/∂z = s ⊙ (z - x) ⊙ 1[z > 0],    ∂L/∂W = Gᵀ h + xᵀ (G W),    ∂L/∂b = Gᵀ 1

(decoder use of W, then encoder use). With the parameters stored as θ = [Wᵀ; bᵀ] ((m+1) × n) and the
stacks D = [G; x] (2B × n) and H = [h 1; GW 0] (2B × (m+1)), the forward is s ⊙ z = [h 1] (θ ⊙ s) and
the whole gradient is one matmul, ∂L/∂θ = Hᵀ D. This is exactly what autograd computes (tests check it).
Data for several steps is drawn at once by toysuper.data.sparse_uniform from a numpy SFC64 stream, and every
view is made once, so a step is seven tensor ops and one optimiser kernel. benchmarks/train_throughput.py
compares it with the published notebook's autograd loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from toysuper.config import ModelConfig, TrainConfig
from toysuper.data import sparse_uniform
from toysuper.model import ToyModel

TRAIN_OPTIMIZERS = {"adamw": torch._fused_adamw_, "adam": torch._fused_adam_}  # name -> fused CPU kernel
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
DATA_CHUNK_ELEMENTS = 1 << 20  # draw data for several steps at once, up to this many floats
_mask = torch.ops.aten.threshold_backward.grad_input  # out = grad ⊙ 1[self > threshold], branch-free


@dataclass
class TrainResult:
    """The trained model and its loss record: the logged steps and, per logged step, every instance's loss."""
    model: ToyModel
    loss_steps: list[int]
    loss_history: list[list[float]]
    """Per logged step: loss of every instance."""

    @property
    def final_loss(self) -> list[float] | None:
        """Every instance's last logged loss (None after 0 steps: nothing was trained)."""
        return self.loss_history[-1] if self.loss_history else None

    def payload(self) -> dict:
        """The saved form (trained_model.pt): the model's tensors and the loss record, so a run that reuses the
        model reports exactly what the run that trained it would have."""
        return {"model": self.model.state_dict(), "loss_steps": self.loss_steps, "loss_history": self.loss_history}

    @classmethod
    def from_payload(cls, payload: dict) -> TrainResult:
        """The inverse of ``payload``."""
        return cls(ToyModel.from_state_dict(payload["model"]), list(payload["loss_steps"]),
                   [list(losses) for losses in payload["loss_history"]])


class _Workspace:
    """θ = [Wᵀ; bᵀ] (n_i, m+1, n), its gradient, and the buffers of the closed form: D = [G; x] for each of
    ``n_slots`` batches (n_slots, n_i, 2B, n), H = [h 1; GW 0] (n_i, 2B, m+1), z (n_i, B, n)."""

    def __init__(self, W: Tensor, b: Tensor, importance: Tensor, batch: int, n_slots: int = 1):
        (n_i, n, m), B = W.shape, batch
        self.theta = torch.cat([W.mT, b[:, None, :]], dim=1).contiguous()
        self.grad = torch.zeros_like(self.theta)
        self.W, self.b = self.theta[:, :m].mT, self.theta[:, m]
        self.scale = (importance.to(W.dtype) * (2.0 / (B * n))).expand(B, n).contiguous()  # s, vectorisable
        self.scale_row, self.scaled_theta = self.scale[0], torch.empty_like(self.theta)
        self.D = torch.empty(n_slots, n_i, 2 * B, n, dtype=W.dtype)
        self.x = self.D[:, :, B:]  # every slot's batch
        self.slots = [(D, D[:, B:], D[:, :B]) for D in self.D]  # (D, x, G)
        self.H = torch.zeros(n_i, 2 * B, m + 1, dtype=W.dtype)
        self.H[:, :B, m] = 1.0
        self.h, self.h1, self.GW, self.Ht = self.H[:, :B, :m], self.H[:, :B], self.H[:, B:, :m], self.H.mT
        self.z = torch.empty(n_i, B, n, dtype=W.dtype)

    def gradient(self, slot: int) -> None:
        """grad ← ∂L/∂θ for the batch x in ``slot`` (G, H and z ← s ⊙ z are filled on the way)."""
        D, x, G = self.slots[slot]
        torch.bmm(x, self.W, out=self.h)  # h = x W
        torch.bmm(self.h1, torch.mul(self.theta, self.scale_row, out=self.scaled_theta), out=self.z)  # s ⊙ z
        torch.addcmul(self.z, x, self.scale, value=-1.0, out=G)  # s ⊙ (z - x)
        _mask(G, self.z, 0.0, grad_input=G)  # G = s ⊙ (z - x) ⊙ 1[z > 0]
        torch.bmm(G, self.W, out=self.GW)
        torch.bmm(self.Ht, D, out=self.grad)  # Hᵀ D = [hᵀG + (GW)ᵀx; 1ᵀG]


def closed_form_grads(model: ToyModel, x: Tensor) -> tuple[Tensor, Tensor]:
    """(∂L/∂W, ∂L/∂b) of Σ_instances model.loss(x) for x (n_i, B, n), computed by the trainer's kernel."""
    work = _Workspace(model.W.to(x.dtype), model.b.to(x.dtype), model.importance, x.shape[1])
    work.x[0] = x
    work.gradient(0)
    return work.grad[:, :-1].mT, work.grad[:, -1]


class _Adam:
    """torch.optim.Adam / AdamW's own fused CPU kernel (weight decay: L2 for Adam, decoupled for AdamW) on one
    parameter tensor, without the Optimizer object's per-step bookkeeping."""

    def __init__(self, params: Tensor, grad: Tensor, config: TrainConfig):
        self.tensors = [params], [grad], [torch.zeros_like(params)], [torch.zeros_like(params)], [], [torch.zeros(())]
        self.kernel = TRAIN_OPTIMIZERS[config.optimizer]
        self.weight_decay = config.weight_decay

    def step(self, lr: float) -> None:
        self.tensors[-1][0].add_(1)  # the step count t
        self.kernel(*self.tensors, lr=lr, beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1], weight_decay=self.weight_decay,
                    eps=ADAM_EPS, amsgrad=False, maximize=False)


def train(model_config: ModelConfig, config: TrainConfig, *, progress: Callable[[int, Tensor | None], None] | None = None,
          model: ToyModel | None = None) -> TrainResult:
    """Train all instances for ``config.steps`` steps from a seeded init (or ``model``); data seeded too.

    ``progress(steps_done, loss_or_None)`` is called after every step (loss: (n_instances,) on logged steps)."""
    init = model or ToyModel.init(model_config, generator=torch.Generator().manual_seed(config.seed))
    (n_i, n, _), B = init.W.shape, config.batch_size
    chunk = max(1, min(config.steps, DATA_CHUNK_ELEMENTS // (n_i * B * n)))
    work = _Workspace(init.W, init.b, init.importance, B, n_slots=chunk)
    toy = ToyModel(work.W, work.b, init.importance, init.probability)
    optimizer = _Adam(work.theta, work.grad, config)
    bits = np.random.SFC64(config.seed)
    loss_steps, loss_history = [], []
    for step in range(config.steps):
        if step % chunk == 0:
            k = min(chunk, config.steps - step)
            sparse_uniform(toy.probability, B, n, generator=bits, n_batches=k, out=work.x[:k])
        logged = (step + 1) % config.log_every == 0 or step + 1 == config.steps
        loss = toy.loss(work.slots[step % chunk][1]) if logged else None
        work.gradient(step % chunk)
        optimizer.step(config.lr_at(step))
        if logged:
            loss_steps.append(step + 1)
            loss_history.append(loss.tolist())
        if progress is not None:
            progress(step + 1, loss)
    final = ToyModel(toy.W.clone(memory_format=torch.contiguous_format), toy.b.clone(), toy.importance, toy.probability)
    return TrainResult(model=final, loss_steps=loss_steps, loss_history=loss_history)
