"""PGD (Madry et al., 2018) in L-inf and L2: native batched torch, equal to ART's PGD without a random start."""
from __future__ import annotations

import torch
from torch import nn

from benchmark.attacking import torch_attacks
from benchmark.entry_api import AttackContext
from benchmark.registry import register_attack

from ._checks import L2_BUDGETS, LINF_BUDGETS, Option, check_batch, generator, read_options

PGD_OPTIONS = {
    "steps": Option(10, int, "ascent steps", low=1),
    "step_size": Option(None, float, "step length (default 2.5 * eps / steps)", above=0),
    "random_start": Option(True, bool, "start at a uniform random point of the eps ball (seeded per batch)"),
    "restarts": Option(1, int, "random restarts; a later one replaces an earlier result that did not fool", low=1),
}
_DEFAULTS = {k: o.default for k, o in PGD_OPTIONS.items()}


def run_pgd(name: str, norm: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
            ctx: AttackContext, mask: torch.Tensor | None = None, extra: dict | None = None) -> torch.Tensor:
    """Check the call, read PGD options (plus `extra` ones) and run torch_attacks.pgd in eval mode."""
    check_batch(name, norm, x, y, eps)
    opts = read_options(name, ctx.options, {**PGD_OPTIONS, **(extra or {})})
    with torch_attacks.eval_mode(model):
        return torch_attacks.pgd(model, x, y, eps, steps=opts["steps"], step_size=opts["step_size"], norm=norm,
                                 random_start=opts["random_start"], generator=generator(x.device, ctx.seed),
                                 mask=mask, restarts=opts["restarts"])


@register_attack("pgd-linf", threat="linf", access="white-box", budgets=LINF_BUDGETS, options=_DEFAULTS)
def pgd_linf(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, ctx: AttackContext) -> torch.Tensor:
    """Projected gradient descent, L-inf ball: signed steps, 10 steps of 2.5*eps/10 from a random start."""
    return run_pgd("pgd-linf", "linf", model, x, y, eps, ctx)


@register_attack("pgd-l2", threat="l2", access="white-box", budgets=L2_BUDGETS, options=_DEFAULTS)
def pgd_l2(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, ctx: AttackContext) -> torch.Tensor:
    """Projected gradient descent, L2 ball: unit-gradient steps, 10 steps of 2.5*eps/10 from a random start."""
    return run_pgd("pgd-l2", "l2", model, x, y, eps, ctx)
