"""Training losses a model's recipe can ask for: cross-entropy, focal loss, an input-gradient penalty, and
distillation from a trained teacher's soft outputs."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from benchmark.entry_api import LossFn
from benchmark.errors import BenchmarkError

__all__ = ["distillation_term", "focal_loss", "make_loss", "LossFn"]

DISTILL_TEMPERATURE = 2.0  # softens both output distributions (Hinton et al. 2015)
DISTILL_WEIGHT = 0.5  # share of the distillation term; the label loss keeps the rest


def focal_loss(logits: torch.Tensor, y: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017): cross-entropy down-weighted by (1 - p_true)^gamma on easy examples."""
    log_p = F.log_softmax(logits.float(), dim=1).gather(1, y.view(-1, 1)).squeeze(1)
    return (-(1 - log_p.exp()).pow(gamma) * log_p).mean()


def distillation_term(logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor,
                      temperature: float = DISTILL_TEMPERATURE) -> torch.Tensor:
    """T^2 * KL(teacher || student) of the two diagnostic classes at temperature T, over images labelled 0 or 1
    (a detecting defense's 'manipulated' images have no teacher opinion)."""
    keep = y < 2
    if not bool(keep.any()):
        return logits.sum() * 0.0
    student = F.log_softmax(logits[keep, :2].float() / temperature, dim=1)
    teacher = F.log_softmax(teacher_logits[keep, :2].float() / temperature, dim=1)
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean") * temperature ** 2


def make_loss(recipe: dict, teacher: nn.Module | None = None) -> LossFn:
    """The loss a recipe names: {"loss": "ce"|"focal", "gamma": 2, "input_grad_penalty": lambda}, mixed with a
    distillation term when a teacher is given (it sees the same augmented batch, as in DeiT)."""
    kind = recipe.get("loss", "ce")
    gamma = float(recipe.get("gamma", 2.0))
    penalty = float(recipe.get("input_grad_penalty", 0.0))
    if kind not in ("ce", "focal"):
        raise BenchmarkError(f"recipe loss '{kind}' is unknown; use 'ce' or 'focal'")

    def base(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return focal_loss(logits, y, gamma) if kind == "focal" else F.cross_entropy(logits.float(), y)

    def objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = model(x)
        if teacher is None:
            return base(logits, y)
        with torch.no_grad():
            teacher_logits = teacher(x)
        return (1 - DISTILL_WEIGHT) * base(logits, y) + DISTILL_WEIGHT * distillation_term(logits, teacher_logits, y)

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if penalty <= 0:
            return objective(model, x, y)
        # input-gradient smoothness: penalise the squared norm of d loss / d x (double backprop)
        x = x.detach().requires_grad_(True)
        value = objective(model, x, y)
        (grad,) = torch.autograd.grad(value, x, create_graph=True)
        return value + penalty * grad.flatten(1).pow(2).sum(1).mean() * x[0].numel()
    return loss
