"""PGD adversarial training (Madry et al., ICLR 2018), with the engine's native batched L-inf PGD."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from benchmark.attacking import torch_attacks
from benchmark.entry_api import Defense
from benchmark.registry import register_defense

from ._options import Option

OPTIONS = {
    "eps": Option("2/255", float, "L-inf budget of the training attack, on the [0,1] intensity scale",
                  above=0, high=1),
    "steps": Option(5, int, "PGD steps per training batch", low=1),
    "step_size": Option(None, float, "PGD step length (default 2.5 * eps / steps)", above=0),
    "fraction": Option(0.5, float, "share of each batch replaced by its adversarial version", above=0, high=1),
    "random_start": Option(True, bool, "start PGD at a uniform random point of the eps ball"),
}


@register_defense("pgd-at")
class PGDAdversarialTraining(Defense):
    """Madry's PGD adversarial training: half of each training batch (option fraction) replaced by L-inf PGD images.

    The attack runs with the model in eval mode (batch-norm statistics are used, not updated, while the examples are
    made) and the model's own modes are restored afterwards. fraction = 0.5 (Goodfellow's mix of clean and
    adversarial images) keeps clean accuracy on the small mammography sets; fraction = 1.0 is Madry's pure recipe.
    """

    differentiable = True
    claims = ("linf",)
    name = "pgd-at"
    options_spec = OPTIONS

    def training_batch(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                       step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ceil(fraction * B) images replaced by their PGD versions (within eps of the originals)."""
        s = self.settings
        k = min(len(x), math.ceil(s["fraction"] * len(x)))
        with torch_attacks.eval_mode(model):
            adv = torch_attacks.pgd(model, x[:k], y[:k], s["eps"], steps=s["steps"], step_size=s["step_size"],
                                    norm="linf", random_start=s["random_start"])
        return torch.cat([adv.to(x.dtype), x[k:]]), y

    def describe(self) -> dict[str, Any]:
        """The base facts plus the resolved training-attack settings."""
        return {**super().describe(), "options": dict(self.settings), "training_attack": "pgd-linf (native torch)"}
