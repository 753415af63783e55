"""One operating point for scoring and attacking: the model as its attacks see it, deciding at the entry's threshold.

An entry is scored at a threshold t chosen on validation (positive iff P(positive) >= t), while attacks (ART's and
the native ones) decide success at argmax. With t far from 0.5 the two disagree: a positive with P = 0.3 at t = 0.13
is correct when scored but already "fooled" for an argmax attack, which then leaves it untouched, and it counts as
robust. `AtThreshold` shifts the positive logit by -log(t / (1 - t)), so that argmax of its 2-class logits is the
thresholded decision: softmax(z)[1] >= t  <=>  z1 - z0 >= logit(t). Extra outputs (a detection head) are unchanged.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["AtThreshold", "at_threshold", "logit_shift"]

_EDGE = 1e-6  # thresholds are clipped to [_EDGE, 1 - _EDGE] so that the shift stays finite


def logit_shift(threshold: float) -> float:
    """log(t / (1 - t)): what is subtracted from the positive logit so that argmax decides at t."""
    t = min(max(float(threshold), _EDGE), 1.0 - _EDGE)
    return math.log(t / (1.0 - t))


class AtThreshold(nn.Module):
    """model with its positive logit shifted: argmax of the first two logits is P(positive) >= threshold."""

    def __init__(self, model: nn.Module, threshold: float) -> None:
        super().__init__()
        self.model = model
        self.threshold = float(threshold)
        self.shift = logit_shift(threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        if self.shift == 0.0:
            return logits
        offset = torch.zeros(logits.shape[-1], dtype=logits.dtype, device=logits.device)
        offset[1] = self.shift
        return logits - offset

    def extra_repr(self) -> str:
        return f"threshold={self.threshold:.6g}, shift={self.shift:.6g}"


def at_threshold(model: nn.Module, threshold: float) -> nn.Module:
    """The model as attacks must see it to aim at the threshold it is scored at (itself when that is 0.5)."""
    return model if logit_shift(threshold) == 0.0 else AtThreshold(model, threshold)
