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

__all__ = ["gan", "gan_adaptive", "gan_transfer", "check_options", "ADAPTIVE_OPTIONS", "GAN_OPTIONS",
           "TRANSFER_OPTIONS"]

GAN_OPTIONS: dict[str, Option] = {
    **SCHEDULE_OPTIONS, "seeds": Option(1, int, "GAN trainings with different seeds; the cell reports each seed's "
                                                "fooled rates, their mean and spread", low=1, high=20)}
# The adaptive attacker: the white-box GAN that also steers the attacked model and evades a detection head.
ADAPTIVE_OPTIONS: dict[str, Option] = {
    **GAN_OPTIONS, "classifier_weight": Option(1.0, float, "weight of the attacked classifier's loss plus its "
                                                           "detection head's (the attacker knows the defense)",
                                               low=0, high=1e6)}
TRANSFER_OPTIONS: dict[str, Option] = {
    **GAN_OPTIONS, "surrogate": Option(None, str, "model of the matrix the fakes are made against (default: the "
                                                  "first model)")}


def check_options(name: str, options: dict[str, Any], transfer: bool) -> dict[str, Any]:
    """Validate a GAN attack's options (schedule knobs, `seeds`, and `surrogate` for transfer); return them as given,
    plus the adaptive attacker's classifier_weight default (the gan stage's parameters, and so its cache key, hold
    what the config wrote and what the attack's name implies)."""
    spec = TRANSFER_OPTIONS if transfer else ADAPTIVE_OPTIONS if name == "gan-adaptive" else GAN_OPTIONS
    read_options(name, options, spec)
    options = dict(options)
    if name == "gan-adaptive":
        options.setdefault("classifier_weight", ADAPTIVE_OPTIONS["classifier_weight"].default)
    schedule_from_options(options, f"attacks.{name}")
    return options


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


@register_attack("gan-adaptive", threat="semantic", access="white-box", needs="fakes", options=ADAPTIVE_OPTIONS)
def gan_adaptive(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, ctx: AttackContext) -> torch.Tensor:
    """Lesion GAN, adaptive: white-box generators that also steer the attacked model and evade its detection head."""
    return _fakes("gan-adaptive", x, ctx)


@register_attack("gan-transfer", threat="semantic", access="transfer", needs="fakes",
                 options=TRANSFER_OPTIONS)
def gan_transfer(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                 ctx: AttackContext) -> torch.Tensor:
    """Lesion GAN, transfer: fakes made once against a surrogate model (option `surrogate`), used on every model."""
    return _fakes("gan-transfer", x, ctx)
