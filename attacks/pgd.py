"""PGD (Madry et al., 2018) in L-inf and L2: native batched torch, equal to ART's PGD without a random start."""
from __future__ import annotations

import torch
from torch import nn

from benchmark.attacking import torch_attacks
from benchmark.entry_api import AttackContext
from benchmark.options import Option
from benchmark.registry import register_attack

from ._budgets import L2_BUDGETS, LINF_BUDGETS

PGD_OPTIONS = {
    "steps": Option(10, int, "ascent steps", low=1),
    "step_size": Option(None, float, "step length (default 2.5 * eps / steps)", above=0),
    "random_start": Option(True, bool, "start at a uniform random point of the eps ball (seeded per batch)"),
    "restarts": Option(1, int, "random restarts; a later one replaces an earlier result that did not fool", low=1),
}


def run_pgd(norm: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, ctx: AttackContext,
            mask: torch.Tensor | None = None) -> torch.Tensor:
    """torch_attacks.pgd in eval mode with the checked options and the seeded generator call_attack hands over."""
    opts = ctx.options
    with torch_attacks.eval_mode(model):
        return torch_attacks.pgd(model, x, y, eps, steps=opts["steps"], step_size=opts["step_size"], norm=norm,
                                 random_start=opts["random_start"], generator=ctx.generator, mask=mask,
                                 restarts=opts["restarts"])


@register_attack("pgd-linf", threat="linf", access="white-box", budgets=LINF_BUDGETS, options=PGD_OPTIONS)
def pgd_linf(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, ctx: AttackContext) -> torch.Tensor:
    """Projected gradient descent, L-inf ball: signed steps, 10 steps of 2.5*eps/10 from a random start."""
    return run_pgd("linf", model, x, y, eps, ctx)


@register_attack("pgd-l2", threat="l2", access="white-box", budgets=L2_BUDGETS, options=PGD_OPTIONS)
def pgd_l2(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, ctx: AttackContext) -> torch.Tensor:
    """Projected gradient descent, L2 ball: unit-gradient steps, 10 steps of 2.5*eps/10 from a random start."""
    return run_pgd("l2", model, x, y, eps, ctx)
