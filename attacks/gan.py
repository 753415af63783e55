"""The study's lesion GAN as an attack: insert cancer-like tissue into negatives, remove it from positives.

The generators are trained in their own `gan` stage and applied once in a `fakes` stage; this entry hands the cell
the test-split fakes. `gan` trains against the attacked (defended) model itself (white-box: the critic starts from
that model's features); `gan-transfer` trains once against a surrogate model of the matrix (defense `none`) and
attacks every model with the same fakes.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from benchmark.entry_api import AttackContext
from benchmark.errors import BenchmarkError
from benchmark.gan.schedule import SCHEDULE_OPTIONS, schedule_from_options
from benchmark.options import Option, read_options
from benchmark.registry import register_attack

__all__ = ["gan", "gan_transfer", "check_options", "GAN_OPTIONS", "TRANSFER_OPTIONS"]

GAN_OPTIONS: dict[str, Option] = dict(SCHEDULE_OPTIONS)
TRANSFER_OPTIONS: dict[str, Option] = {
    **GAN_OPTIONS, "surrogate": Option(None, str, "model of the matrix the fakes are made against (default: the "
                                                  "first model)")}


def check_options(name: str, options: dict[str, Any], transfer: bool) -> dict[str, Any]:
    """Validate a GAN attack's options (schedule knobs, and `surrogate` for transfer); return them as given (the
    gan stage's parameters, and so its cache key, hold only what the config wrote)."""
    read_options(name, options, TRANSFER_OPTIONS if transfer else GAN_OPTIONS)
    schedule_from_options(options, f"attacks.{name}")
    return dict(options)


def _fakes(name: str, x: torch.Tensor, ctx: AttackContext) -> torch.Tensor:
    if ctx.fakes is None:
        raise BenchmarkError(f"attack {name} runs only inside the matrix, which trains its generators first")
    if ctx.fakes.shape != x.shape:
        raise BenchmarkError(f"attack {name}: fakes of shape {tuple(ctx.fakes.shape)} for a batch {tuple(x.shape)}")
    return ctx.fakes.to(x.device, x.dtype)


@register_attack("gan", threat="semantic", access="white-box", needs="fakes", options=GAN_OPTIONS)
def gan(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, ctx: AttackContext) -> torch.Tensor:
    """Lesion GAN (Zhou et al. 2021), white-box: generators trained against the attacked model's own features."""
    return _fakes("gan", x, ctx)


@register_attack("gan-transfer", threat="semantic", access="transfer", needs="fakes",
                 options=TRANSFER_OPTIONS)
def gan_transfer(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                 ctx: AttackContext) -> torch.Tensor:
    """Lesion GAN, transfer: fakes made once against a surrogate model (option `surrogate`), used on every model."""
    return _fakes("gan-transfer", x, ctx)
