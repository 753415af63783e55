"""Training losses a model's recipe can ask for: cross-entropy, focal loss, and an input-gradient penalty."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from benchmark.entry_api import LossFn
from benchmark.errors import BenchmarkError

__all__ = ["focal_loss", "make_loss", "LossFn"]


def focal_loss(logits: torch.Tensor, y: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017): cross-entropy down-weighted by (1 - p_true)^gamma on easy examples."""
    log_p = F.log_softmax(logits.float(), dim=1).gather(1, y.view(-1, 1)).squeeze(1)
    return (-(1 - log_p.exp()).pow(gamma) * log_p).mean()


def make_loss(recipe: dict) -> LossFn:
    """The loss a recipe names: {"loss": "ce"|"focal", "gamma": 2, "input_grad_penalty": lambda}."""
    kind = recipe.get("loss", "ce")
    gamma = float(recipe.get("gamma", 2.0))
    penalty = float(recipe.get("input_grad_penalty", 0.0))
    if kind not in ("ce", "focal"):
        raise BenchmarkError(f"recipe loss '{kind}' is unknown; use 'ce' or 'focal'")

    def base(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return focal_loss(logits, y, gamma) if kind == "focal" else F.cross_entropy(logits.float(), y)

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if penalty <= 0:
            return base(model(x), y)
        # input-gradient smoothness: penalise the squared norm of d loss / d x (double backprop)
        x = x.detach().requires_grad_(True)
        value = base(model(x), y)
        (grad,) = torch.autograd.grad(value, x, create_graph=True)
        return value + penalty * grad.flatten(1).pow(2).sum(1).mean() * x[0].numel()
    return loss
