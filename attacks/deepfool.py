"""DeepFool (Moosavi-Dezfooli et al., 2016) through ART, reported as an L2 attack at each budget.

DeepFool walks to the nearest decision boundary (a minimal-L2 perturbation, with a small overshoot) and has no
budget of its own; its result is projected onto the budget's L2 ball. An image whose minimal perturbation is
larger than eps is scaled back inside the ball and then usually stays correctly classified, so robust accuracy at
eps approximates the share of images whose distance to the boundary exceeds eps.
"""
from __future__ import annotations

import torch
from torch import nn

from benchmark.attacking.art_adapter import art_generate
from benchmark.entry_api import AttackContext
from benchmark.options import Option
from benchmark.registry import register_attack

from ._budgets import L2_BUDGETS

DEEPFOOL_OPTIONS = {
    "steps": Option(100, int, "maximum iterations (ART max_iter)", low=1),
    "overshoot": Option(0.02, float, "overshoot past the boundary, the paper's 0.02 (ART epsilon)", low=0),
}


@register_attack("deepfool", threat="l2", access="white-box", budgets=L2_BUDGETS, minimal=True,
                 options=DEEPFOOL_OPTIONS)
def deepfool(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, ctx: AttackContext) -> torch.Tensor:
    """DeepFool minimal-L2 attack (ART), its result projected onto the L2 budget ball."""
    from art.attacks.evasion import DeepFool

    o = ctx.options
    return art_generate(lambda clf: DeepFool(clf, max_iter=o["steps"], epsilon=o["overshoot"], nb_grads=10,
                                             batch_size=ctx.batch_size, verbose=False),
                        model, x, y, ctx, name="deepfool")  # projected onto the budget by call_attack
