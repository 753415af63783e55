"""FGSM: one signed-gradient step (Goodfellow et al., 2015), through ART."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from benchmark.art_adapter import art_generate
from benchmark.entry_api import AttackContext
from benchmark.registry import register_attack


@register_attack("fgsm", threat="linf", access="white-box", budgets=("1/255", "2/255"))
def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, ctx: AttackContext) -> torch.Tensor:
    """Fast Gradient Sign Method: one L-inf step of size eps along the loss gradient's sign (ART)."""
    from art.attacks.evasion import FastGradientMethod

    return art_generate(lambda clf: FastGradientMethod(clf, norm=np.inf, eps=eps, batch_size=ctx.batch_size),
                        model, x, y, ctx)
