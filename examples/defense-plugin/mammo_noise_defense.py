"""An example defense plugin for mammo-robustness-bench: Gaussian noise added to every training batch."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from benchmark.entry_api import Defense
from benchmark.errors import BenchmarkError

__all__ = ["GaussianNoiseAugmentation"]

_NAME = "gaussian-noise-aug"


class GaussianNoiseAugmentation(Defense):
    """Gaussian noise augmentation: N(0, sigma^2) added to every training image, clipped to [0,1]."""

    differentiable = True  # the deployed model is the plain model: ordinary gradients attack it honestly
    claims = ("l2",)  # random noise mostly helps against small L2 perturbations (Gilmer et al., 2019)

    def __init__(self, options: dict | None = None) -> None:
        super().__init__(options)
        unknown = sorted(set(self.options) - {"sigma"})
        if unknown:
            raise BenchmarkError(f"defenses.{_NAME}.options.{unknown[0]}: unknown option ({_NAME} accepts: sigma)")
        sigma = self.options.get("sigma", 0.03)
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma < 0:
            raise BenchmarkError(f"defenses.{_NAME}.options.sigma: expected a number >= 0, got {sigma!r}")
        self.sigma = float(sigma)

    def training_batch(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                       step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch plus Gaussian noise of standard deviation sigma (the train stage seeds torch's generator)."""
        return (x + self.sigma * torch.randn_like(x)).clamp(0, 1), y

    def describe(self) -> dict[str, Any]:
        """The base facts plus the noise level actually used."""
        return {**super().describe(), "options": {"sigma": self.sigma}}
