"""The one attack wrapper: every attack entry, built-in or plugin, runs through `call_attack`.

It refuses a batch or budget the attack cannot honestly run on, reads the options against the entry's card (the
attack gets them checked, defaults filled in, in `ctx.options`), hands it a torch generator seeded with the batch
seed (`ctx.generator`), and checks what comes back: a finite tensor of the input's shape, then clipped to [0,1]
and projected onto the budget (pixels or images already inside it are left exactly as they are).
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from benchmark.entry_api import AttackContext
from benchmark.errors import BenchmarkError
from benchmark.options import read_options

__all__ = ["call_attack", "check_batch", "check_output", "generator"]

_LINF_SLACK = 1e-6  # float32 rounding of x + delta - x: a pixel this close to the budget is inside it
_L2_SLACK = 1e-6


def generator(device: torch.device, seed: int) -> torch.Generator:
    """A torch generator on device seeded with the batch seed (reproducible random starts on CPU)."""
    return torch.Generator(device=device).manual_seed(int(seed) % 2**63)


def check_batch(name: str, threat: str, x: torch.Tensor, y: torch.Tensor, eps: float | None) -> None:
    """Refuse a batch or budget an attack cannot honestly run on: NaNs, values off [0,1], bad labels or budget
    (eps None: a semantic attack, no budget)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise BenchmarkError(f"attack {name}: expected a float image batch (B, C, H, W), got {shape}")
    if not isinstance(y, torch.Tensor) or y.shape != x.shape[:1]:
        raise BenchmarkError(f"attack {name}: expected {x.shape[0]} labels, got "
                             f"{tuple(y.shape) if hasattr(y, 'shape') else type(y).__name__}")
    if x.numel() == 0:
        raise BenchmarkError(f"attack {name}: empty image batch {tuple(x.shape)}")
    lo, hi = torch.aminmax(x)  # NaN propagates into both; one pass, one device sync below
    lo, hi, ylo, yhi = torch.stack([lo, hi, y.min().to(x.dtype), y.max().to(x.dtype)]).tolist()
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise BenchmarkError(f"attack {name}: the input batch has NaN or infinite pixels; fix the data or its "
                             "preprocessing before attacking")
    if lo < 0 or hi > 1:
        raise BenchmarkError(f"attack {name}: pixels must be intensities in [0,1], got [{lo:.4g}, {hi:.4g}]; "
                             "normalise the images (the benchmark never rounds them to 8 bits)")
    if ylo < 0 or yhi > 1:
        raise BenchmarkError(f"attack {name}: labels must be 0 (negative) or 1 (positive)")
    if eps is None:
        return
    ceiling = 1.0 if threat == "linf" else math.sqrt(x[0].numel())
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 < eps <= ceiling:
        raise BenchmarkError(f"attack {name}: budget {eps!r} is outside (0, {ceiling:.6g}] for a {threat} attack "
                             "on [0,1] images")


def check_output(name: str, threat: str, x_adv: Any, x: torch.Tensor, eps: float) -> torch.Tensor:
    """x_adv refused unless a finite tensor of x's shape; then clipped to [0,1] and projected onto the eps ball of
    threat (linf, l2; semantic edits have none). Values already inside are returned bit for bit."""
    if not isinstance(x_adv, torch.Tensor) or x_adv.shape != x.shape:
        shape = tuple(x_adv.shape) if hasattr(x_adv, "shape") else type(x_adv).__name__
        raise BenchmarkError(f"attack {name} returned {shape}, expected a tensor of shape {tuple(x.shape)}")
    if not torch.isfinite(x_adv).all():
        raise BenchmarkError(f"attack {name} returned NaN or infinite pixels")
    x_adv = x_adv.to(x.device, x.dtype).clamp(0, 1)
    if threat == "linf":
        delta = x_adv - x
        outside = delta.abs() > eps + _LINF_SLACK
        if bool(outside.any()):
            x_adv = torch.where(outside, (x + delta.clamp(-eps, eps)).clamp(0, 1), x_adv)
    elif threat == "l2":
        delta = x_adv - x
        norms = delta.flatten(1).norm(dim=1).view(-1, *([1] * (x.dim() - 1)))
        outside = norms > eps * (1 + _L2_SLACK)
        if bool(outside.any()):
            scaled = (x + delta * (eps / norms.clamp_min(1e-30))).clamp(0, 1)
            x_adv = torch.where(outside, scaled, x_adv)
    return x_adv


def call_attack(component: Any, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                ctx: AttackContext) -> torch.Tensor:
    """Run the attack entry `component` (a registry Component with an AttackCard) on one batch, checked.

    Raises BenchmarkError for a bad batch or budget, an unknown or invalid option (in the style
    `attacks.<name>.options.<key>: ...`), and an output of the wrong shape or with NaNs.
    """
    name, card = component.name, component.card
    semantic = card.threat == "semantic"
    check_batch(name, card.threat, x, y, None if semantic else eps)
    options = read_options(name, dict(ctx.options or {}), card.options)
    # a generator already set is a chunk's, shared by its micro-batches (benchmark/stages/attack.py)
    run_ctx = replace(ctx, options=options, generator=ctx.generator or generator(x.device, ctx.seed))
    x_adv = component.obj(model, x, y, eps, run_ctx)
    return check_output(name, card.threat, x_adv, x, eps)
