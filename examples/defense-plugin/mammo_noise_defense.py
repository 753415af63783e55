"""An example defense plugin for mammo-robustness-bench: Gaussian noise added to every training batch."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from benchmark.entry_api import Defense
from benchmark.options import Option

__all__ = ["GaussianNoiseAugmentation"]


class GaussianNoiseAugmentation(Defense):
    """Gaussian noise augmentation: N(0, sigma^2) added to every training image, clipped to [0,1]."""

    name = "gaussian-noise-aug"
    differentiable = True  # the deployed model is the plain model: ordinary gradients attack it honestly
    claims = ("l2",)  # random noise mostly helps against small L2 perturbations (Gilmer et al., 2019)
    # The options it takes: the engine checks a config's options against these before anything runs.
    options_spec = {"sigma": Option(0.03, float, "standard deviation of the added noise, on the [0,1] scale",
                                    low=0, high=1)}

    @property
    def sigma(self) -> float:
        """The noise level in use (checked, default filled in)."""
        return float(self.settings["sigma"])

    def training_batch(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                       step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch plus Gaussian noise of standard deviation sigma (the train stage seeds torch's generator)."""
        return (x + self.sigma * torch.randn_like(x)).clamp(0, 1), y

    def describe(self) -> dict[str, Any]:
        """The base facts plus the noise level actually used."""
        return {**super().describe(), "options": {"sigma": self.sigma}}
