"""The pre-training loop: closed-form gradients vs autograd, the optimiser vs torch.optim, the data's law,
seeding and learning-rate schedules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

import toysuper.train as train_module
from toysuper.config import ModelConfig, TrainConfig
from toysuper.data import sparse_uniform
from toysuper.model import ToyModel
from toysuper.train import closed_form_grads, train


def _model(seed: int, n: int, m: int, instances: int, *, bias: float = 0.0, dtype=torch.float32) -> ToyModel:
    gen = torch.Generator().manual_seed(seed)
    return ToyModel(W=torch.randn(instances, n, m, generator=gen, dtype=dtype),
                    b=bias * torch.randn(instances, n, generator=gen, dtype=dtype),
                    importance=torch.rand(n, generator=gen, dtype=dtype) + 0.01,
                    probability=torch.full((instances,), 0.5, dtype=dtype))


def _autograd(model: ToyModel, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    W, b = model.W.clone().requires_grad_(True), model.b.clone().requires_grad_(True)
    ToyModel(W, b, model.importance, model.probability).loss(x).sum().backward()
    return W.grad, b.grad


@given(seed=st.integers(0, 2**31 - 1), instances=st.integers(1, 4), batch=st.integers(1, 40),
       n=st.integers(2, 12), m=st.integers(1, 6), bias=st.sampled_from([0.0, 0.3, 2.0]),
       p=st.sampled_from([1.0, 0.3, 0.02]))
def test_closed_form_grads_equal_autograd(seed, instances, batch, n, m, bias, p):
    """∂L/∂W = Gᵀh + xᵀ(GW), ∂L/∂b = Gᵀ1 with the ReLU gate 1[z > 0], in float64 (ties at z = 0 included:
    an all-zero sample with b = 0 has z = 0 exactly, where both give zero gradient)."""
    model = _model(seed, n, m, instances, bias=bias, dtype=torch.float64)
    x = sparse_uniform(torch.full((instances,), p), batch, n, generator=torch.Generator().manual_seed(seed))
    x = x.double()
    grad_W, grad_b = closed_form_grads(model, x)
    auto_W, auto_b = _autograd(model, x)
    torch.testing.assert_close(grad_W, auto_W, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(grad_b, auto_b, rtol=1e-10, atol=1e-14)


def test_closed_form_grads_float32():
    model = _model(3, 20, 5, 8, bias=0.2)
    x = sparse_uniform(torch.linspace(1.0, 0.05, 8), 1024, 20, generator=torch.Generator().manual_seed(0))
    grad_W, grad_b = closed_form_grads(model, x)
    auto_W, auto_b = _autograd(model, x)
    torch.testing.assert_close(grad_W, auto_W, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(grad_b, auto_b, rtol=1e-4, atol=1e-7)


def _reference(model: ToyModel, config: TrainConfig, n_steps: int) -> ToyModel:
    """Autograd + torch.optim (default, non-fused) on the trainer's own data stream."""
    n_i, n, _ = model.W.shape
    W, b = model.W.clone().requires_grad_(True), model.b.clone().requires_grad_(True)
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    opt = kind([W, b], lr=config.lr, betas=train_module.ADAM_BETAS, eps=train_module.ADAM_EPS,
               weight_decay=config.weight_decay)
    data = sparse_uniform(model.probability, config.batch_size, n, generator=np.random.SFC64(config.seed),
                          n_batches=n_steps)  # the trainer draws it in chunks: the same stream (even sizes)
    for step in range(n_steps):
        for group in opt.param_groups:
            group["lr"] = config.lr_at(step)
        opt.zero_grad()
        ToyModel(W, b, model.importance, model.probability).loss(data[step]).sum().backward()
        opt.step()
    return ToyModel(W.detach(), b.detach(), model.importance, model.probability)


@pytest.mark.parametrize("optimizer,weight_decay", [("adamw", 0.0), ("adamw", 0.1), ("adam", 0.0), ("adam", 0.1)])
@pytest.mark.parametrize("n_steps", [1, 7])
def test_optimizer_steps_equal_torch_optim(optimizer, weight_decay, n_steps, monkeypatch):
    """Training == autograd + torch.optim.AdamW / Adam on the same data, including weight decay (AdamW:
    decoupled; Adam: L2 on the gradient), a warm-up + cosine schedule, and data drawn over several chunks."""
    monkeypatch.setattr(train_module, "DATA_CHUNK_ELEMENTS", 3 * 4 * 64 * 6)  # 3 steps per draw
    mc = ModelConfig(n_features=6, n_hidden=2, n_instances=4, feature_probability=1.0, feature_probability_min=0.1)
    config = TrainConfig(steps=n_steps, batch_size=64, lr=0.05, optimizer=optimizer, weight_decay=weight_decay,
                         lr_schedule="cosine", warmup_steps=2, seed=5)
    start = _model(7, 6, 2, 4, bias=0.3)
    start.probability = torch.tensor(mc.feature_probabilities())
    ours = train(mc, config, model=start.clone()).model
    ref = _reference(start, config, n_steps)
    torch.testing.assert_close(ours.W, ref.W, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.b, ref.b, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(ours.W, start.W)


@pytest.mark.parametrize("generator", ["torch", "numpy"])
@pytest.mark.parametrize("p", [1.0, 0.3, 0.02])
def test_sparse_uniform_law(generator, p):
    """P(x ≠ 0) = p within a 5σ binomial bound, active magnitudes U[0, 1) (KS test), values in [0, 1),
    pairs of features active together with probability p² (independence)."""
    gen = torch.Generator().manual_seed(1) if generator == "torch" else np.random.SFC64(1)
    x = sparse_uniform(torch.tensor([p, 1.0]), 20_000, 10, generator=gen)[0]
    active = x > 0
    n = active.numel()
    assert abs(active.float().mean().item() - p) <= 5 * (p * (1 - p) / n) ** 0.5 + 1e-6
    both = (active[:, 0] & active[:, 1]).float().mean().item()
    assert abs(both - p * p) <= 5 * (p * p * (1 - p * p) / x.shape[0]) ** 0.5 + 1e-6
    assert x.min() >= 0 and x.max() < 1
    assert stats.kstest(x[active].numpy(), "uniform").pvalue > 1e-3


def test_sparse_uniform_dense_is_torch_rand_grid():
    """With p = 1 the bit-generator path gives k·2⁻²⁴ exactly, like torch.rand."""
    x = sparse_uniform(torch.ones(2), 500, 8, generator=np.random.SFC64(0), n_batches=3)
    assert x.shape == (3, 2, 500, 8)
    k = x * 2**24
    assert torch.equal(k, k.round()) and k.max() < 2**24
    assert len(torch.unique(x)) > 0.99 * x.numel()


def test_bit_generator_stream_is_independent_of_chunking():
    """Drawing several batches at once or one by one consumes the same raw words (even sizes)."""
    probs = torch.tensor([1.0, 0.5, 0.1])
    together = sparse_uniform(probs, 100, 8, generator=np.random.SFC64(4), n_batches=3)
    bits = np.random.SFC64(4)
    assert torch.equal(together, torch.stack([sparse_uniform(probs, 100, 8, generator=bits) for _ in range(3)]))


def test_sparse_uniform_writes_into_out():
    out = torch.full((2, 3, 2, 16, 5), -1.0)[:, :, 1]  # a strided view
    res = sparse_uniform(torch.tensor([1.0, 0.5, 0.1]), 16, 5, generator=np.random.SFC64(2), n_batches=2, out=out)
    assert res.data_ptr() == out.data_ptr() and (out >= 0).all()


def test_same_seed_same_model_different_seed_different_model():
    mc = ModelConfig(n_features=6, n_hidden=2, n_instances=3, feature_probability=0.5, feature_probability_min=0.1)
    config = TrainConfig(steps=30, batch_size=128, log_every=10, seed=3)
    a, b = train(mc, config), train(mc, config)
    c = train(mc, TrainConfig(steps=30, batch_size=128, log_every=10, seed=4))
    assert torch.equal(a.model.W, b.model.W) and torch.equal(a.model.b, b.model.b)
    assert a.loss_history == b.loss_history and a.loss_steps == [10, 20, 30]
    assert not torch.equal(a.model.W, c.model.W)


def test_progress_and_loss_logging():
    mc = ModelConfig(n_features=5, n_hidden=2, n_instances=2, feature_probability=0.5, feature_probability_min=None)
    calls = []
    result = train(mc, TrainConfig(steps=7, batch_size=32, log_every=3),
                   progress=lambda step, loss: calls.append((step, None if loss is None else loss.shape)))
    assert calls == [(1, None), (2, None), (3, (2,)), (4, None), (5, None), (6, (2,)), (7, (2,))]
    assert result.loss_steps == [3, 6, 7] and all(len(losses) == 2 for losses in result.loss_history)
    assert result.model.W.is_contiguous() and result.model.W.shape == (2, 5, 2)
    assert train(mc, TrainConfig(steps=0)).loss_steps == []


def test_training_reduces_loss():
    mc = ModelConfig(n_features=10, n_hidden=3, n_instances=4, feature_probability=0.3, feature_probability_min=0.05)
    history = train(mc, TrainConfig(steps=300, batch_size=256, log_every=1, lr=1e-2)).loss_history
    assert sum(history[-1]) < 0.5 * sum(history[0])  # history[0]: the loss at initialisation


@pytest.mark.parametrize("schedule", ["constant", "cosine", "linear"])
def test_lr_schedules(schedule):
    config = TrainConfig(steps=100, lr=0.1, lr_schedule=schedule, warmup_steps=10)
    lrs = [config.lr_at(step) for step in range(100)]
    assert lrs[:10] == pytest.approx([0.1 * (s + 1) / 10 for s in range(10)])
    assert lrs[10] == pytest.approx(0.1)
    after = lrs[10:]
    if schedule == "constant":
        assert after == pytest.approx([0.1] * 90)
    else:
        assert all(a >= b for a, b in zip(after, after[1:])) and after[-1] < 0.1 * 0.05
        mid = 10 + 45
        assert lrs[mid] == pytest.approx(0.05)  # halfway: cos and linear both at lr / 2
