"""Carlini-Wagner L2 (Carlini & Wagner, 2017) through ART, reported as an L2 attack at each budget.

C&W minimises the perturbation rather than respecting a budget; its result is projected onto the budget's L2 ball
(the perturbation scaled down to norm eps where larger). An image therefore counts as fooled at budget eps when the
scaled perturbation still fools the model, which is at least as often as C&W's own norm is <= eps.
"""
from __future__ import annotations

import torch
from torch import nn

from benchmark.attacking.art_adapter import art_generate
from benchmark.entry_api import AttackContext
from benchmark.options import Option
from benchmark.registry import register_attack

from ._budgets import L2_BUDGETS

CW_OPTIONS = {
    "confidence": Option(0.0, float, "logit margin kappa the adversarial class must win by", low=0),
    "learning_rate": Option(0.01, float, "Adam step size of the inner optimisation", above=0),
    "binary_search_steps": Option(10, int, "searches over the trade-off constant c", low=1),
    "steps": Option(10, int, "optimisation steps per search (ART max_iter)", low=1),
    "initial_const": Option(0.01, float, "initial trade-off constant c", above=0),
}


@register_attack("cw-l2", threat="l2", access="white-box", budgets=L2_BUDGETS, minimal=True,
                 options=CW_OPTIONS)
def cw_l2(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, ctx: AttackContext) -> torch.Tensor:
    """Carlini-Wagner L2 (ART), its result projected onto the L2 budget ball."""
    from art.attacks.evasion import CarliniL2Method

    o = ctx.options
    return art_generate(lambda clf: CarliniL2Method(
        clf, confidence=o["confidence"], learning_rate=o["learning_rate"],
        binary_search_steps=o["binary_search_steps"], max_iter=o["steps"], initial_const=o["initial_const"],
        batch_size=ctx.batch_size, verbose=False), model, x, y, ctx, name="cw-l2")  # projected by call_attack
