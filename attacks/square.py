"""Square Attack (Andriushchenko et al., 2020) through ART: black-box, L-inf, score queries only."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from benchmark.attacking.art_adapter import art_generate
from benchmark.entry_api import AttackContext
from benchmark.options import Option
from benchmark.registry import register_attack

from ._budgets import LINF_BUDGETS

SQUARE_OPTIONS = {
    "queries": Option(1000, int, "query budget per image (ART max_iter; the paper uses 5000 and 10000)", low=1),
    "p_init": Option(0.8, float, "initial fraction of pixels a square covers", above=0, high=1),
    "restarts": Option(1, int, "random restarts (ART nb_restarts)", low=1),
}


@register_attack("square", threat="linf", access="black-box", budgets=LINF_BUDGETS, options=SQUARE_OPTIONS)
def square(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, ctx: AttackContext) -> torch.Tensor:
    """Square Attack: random square updates accepted by the model's scores alone, within a query budget (ART)."""
    from art.attacks.evasion import SquareAttack

    o = ctx.options
    return art_generate(lambda clf: SquareAttack(clf, norm=np.inf, max_iter=o["queries"], eps=eps,
                                                 p_init=o["p_init"], nb_restarts=o["restarts"],
                                                 batch_size=ctx.batch_size, verbose=False),
                        model, x, y, ctx, name="square")  # projected onto the budget by call_attack
