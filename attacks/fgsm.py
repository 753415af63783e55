"""FGSM: one signed-gradient step (Goodfellow et al., 2015), native batched torch (equal to ART's output)."""
from __future__ import annotations

import torch
from torch import nn

from benchmark.attacking import torch_attacks
from benchmark.entry_api import AttackContext
from benchmark.registry import register_attack

from ._budgets import LINF_BUDGETS


@register_attack("fgsm", threat="linf", access="white-box", budgets=LINF_BUDGETS, options={})
def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, ctx: AttackContext) -> torch.Tensor:
    """Fast Gradient Sign Method: one L-inf step of size eps along the loss gradient's sign (native torch)."""
    with torch_attacks.eval_mode(model):
        return torch_attacks.fgsm(model, x, y, eps)
