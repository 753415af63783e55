"""Lesion-region PGD: the study's "target sensitive content" case, an L-inf PGD confined to a region of the breast.

Positives with a lesion mask are perturbed only inside the lesion. Negatives (and positives without a mask) get a
plausible stand-in: a disc inside the breast (pixels brighter than `breast_threshold`), at a random location drawn
from the batch seed, with an area drawn from the batch's lesion areas (or `region_fraction` of the image).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.attacking.attack_call import generator
from benchmark.entry_api import AttackContext
from benchmark.options import Option
from benchmark.registry import register_attack

from ._budgets import LINF_BUDGETS
from .pgd import PGD_OPTIONS, run_pgd

__all__ = ["attack_region", "lesion_pgd"]

REGION_OPTIONS = {
    "breast_threshold": Option(0.05, float, "pixels brighter than this are breast", low=0, high=1),
    "region_fraction": Option(None, float, "area of a random region as a fraction of the image "
                                           "(default: drawn from the batch's lesion areas, else 0.01)",
                              above=0, high=1),
}
_FALLBACK_FRACTION = 0.01


def _centre_candidates(breast: torch.Tensor, radius: int) -> torch.Tensor:
    """(H, W) bool: centres whose (2r+1)^2 window lies inside the breast (outside the image counts as outside)."""
    outside = F.pad((~breast).float()[None, None], (radius,) * 4, value=1.0)
    return F.max_pool2d(outside, 2 * radius + 1, stride=1)[0, 0] == 0


def _random_disc(breast: torch.Tensor, area: float, gen: torch.Generator) -> torch.Tensor:
    """(H, W) bool: a disc of about `area` pixels at a random place inside the breast, cut to the breast."""
    h, w = breast.shape
    radius = max(1.0, math.sqrt(area / math.pi))
    for r in (math.ceil(radius), math.ceil(radius / 2), 0):
        allowed = _centre_candidates(breast, r) if r else breast
        if bool(allowed.any()):
            break
    else:
        allowed = torch.ones_like(breast)  # no breast at all: anywhere
    idx = int(torch.multinomial(allowed.flatten().float(), 1, generator=gen))
    cy, cx = divmod(idx, w)
    yy = torch.arange(h, device=breast.device).view(-1, 1)
    xx = torch.arange(w, device=breast.device).view(1, -1)
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2
    return disc & breast if bool((disc & breast).any()) else disc


def attack_region(x: torch.Tensor, y: torch.Tensor, masks: torch.Tensor | None, seed: int,
                  breast_threshold: float = 0.05, region_fraction: float | None = None) -> torch.Tensor:
    """(B,1,H,W) float 0/1: the lesion for positives with a mask, a random breast disc for the others."""
    b, _, h, w = x.shape
    lesion = (masks > 0) if masks is not None else torch.zeros(x.shape, dtype=torch.bool, device=x.device)
    lesion = lesion.to(x.device).expand(b, 1, h, w)
    areas = lesion.flatten(1).sum(1)
    use_lesion = (y == 1) & (areas > 0)
    region = lesion & use_lesion.view(-1, 1, 1, 1)
    pool = areas[use_lesion].float()
    gen = generator(torch.device("cpu"), seed)  # region choice on CPU: identical on every device
    for i in torch.nonzero(~use_lesion).flatten().tolist():
        if region_fraction is not None:
            area = region_fraction * h * w
        elif len(pool):
            area = float(pool[int(torch.randint(len(pool), (1,), generator=gen))])
        else:
            area = _FALLBACK_FRACTION * h * w
        breast = (x[i, 0] > breast_threshold).cpu()
        region[i, 0] = _random_disc(breast, area, gen).to(x.device)
    return region.to(x.dtype)


@register_attack("lesion-pgd", threat="linf", access="white-box", budgets=LINF_BUDGETS, needs="masks",
                 options={**PGD_OPTIONS, **REGION_OPTIONS})
def lesion_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, ctx: AttackContext) -> torch.Tensor:
    """PGD-Linf confined to the lesion (positives) or to a random breast region of lesion size (negatives)."""
    opts = ctx.options
    region = attack_region(x, y, ctx.masks, ctx.seed, opts["breast_threshold"], opts["region_fraction"])
    return run_pgd("linf", model, x, y, eps, ctx, mask=region)
