"""The tied-weights toy model of superposition, many independent instances at once.

x̂ = ReLU(W Wᵀ x + b) per instance, with W (n_instances, n_features, n_hidden) whose rows W_i are the
feature directions, and b (n_instances, n_features). Loss: Σ_instances mean_{batch, features} I_i (x_i - x̂_i)²."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from toysuper.config import ModelConfig


@dataclass
class ToyModel:
    """Parameters as plain tensors (the trainer computes gradients in closed form)."""

    W: Tensor
    """Feature directions W_i (rows), (n_instances, n_features, n_hidden)."""
    b: Tensor
    """Biases, (n_instances, n_features)."""
    importance: Tensor
    """Importance I_i of each feature in the loss, (n_features,)."""
    probability: Tensor
    """P(feature active) of each instance's pre-training data, (n_instances,)."""

    @classmethod
    def init(cls, config: ModelConfig, generator: torch.Generator | None = None) -> "ToyModel":
        """Xavier-normal W per instance, std √(2/(n+m)), and zero b. (The published notebook applies
        nn.init.xavier_normal_ to the whole 3-D tensor, whose fans also count the instances:
        std √(2/(m (n + n_instances))).)"""
        n_i, n_f, n_h = config.n_instances, config.n_features, config.n_hidden
        std = (2.0 / (n_f + n_h)) ** 0.5
        return cls(W=torch.randn(n_i, n_f, n_h, generator=generator) * std, b=torch.zeros(n_i, n_f),
                   importance=torch.tensor(config.importances()), probability=torch.tensor(config.feature_probabilities()))

    def hidden(self, x: Tensor) -> Tensor:
        """h = Wᵀx: (n_instances, batch, n_features) -> (n_instances, batch, n_hidden)."""
        return torch.bmm(x, self.W)

    def preactivation(self, x: Tensor) -> Tensor:
        """z = W Wᵀ x + b: (n_instances, batch, n_features)."""
        return torch.baddbmm(self.b[:, None, :], self.hidden(x), self.W.transpose(1, 2))

    def forward(self, x: Tensor) -> Tensor:
        """x̂ = ReLU(W Wᵀ x + b): (n_instances, batch, n_features) -> same shape."""
        return torch.relu(self.preactivation(x))

    def loss(self, x: Tensor) -> Tensor:
        """Per-instance importance-weighted MSE, (n_instances,)."""
        return (self.importance * (self.forward(x) - x) ** 2).mean(dim=(1, 2))

    def clone(self) -> "ToyModel":
        """A copy with cloned tensors."""
        return ToyModel(self.W.clone(), self.b.clone(), self.importance.clone(), self.probability.clone())

    def state_dict(self) -> dict[str, Tensor]:
        """The tensors by name (W, b, importance, probability)."""
        return {"W": self.W, "b": self.b, "importance": self.importance, "probability": self.probability}

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor]) -> "ToyModel":
        """The model from ``state_dict``'s tensors."""
        return cls(**{k: state[k] for k in ("W", "b", "importance", "probability")})
