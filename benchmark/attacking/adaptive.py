"""Attacking input-transformation defenses honestly: BPDA (straight-through gradients) and EOT (averaged draws).

A transform such as JPEG, median smoothing or bit-depth squeezing gives an attack no useful gradient: it runs on
numpy (no autograd graph) or is piecewise constant (zero gradient almost everywhere). An attack that differentiates
the defended model as it stands then fails for the wrong reason and the defense looks robust (Athalye, Carlini and
Wagner, ICML 2018). `TransformedModel` is adaptive by construction: its forward runs the real transform, its backward
passes the gradient through as if the transform were the identity (BPDA); for a random transform it averages the
logits of `samples` draws whenever a gradient is being taken (EOT). So every gradient attack of the engine, native
or through ART, attacks a defended model adaptively without knowing it is one.

`naive=True` gives the setting an evaluation gets when it treats the transform as a black box with zero gradient;
it exists so that tests can measure how much such an evaluation overstates robustness.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["Transform", "TransformedModel", "bpda", "numpy_transform"]

# (B, C, H, W) float tensor in [0,1] -> the transformed batch, same shape, dtype and device
Transform = Callable[[torch.Tensor], torch.Tensor]


class _StraightThrough(torch.autograd.Function):
    """Forward: fn(x), computed without a graph. Backward: the incoming gradient unchanged (BPDA), or zero (naive)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, fn: Transform, naive: bool) -> torch.Tensor:
        ctx.naive = naive
        with torch.no_grad():
            out = fn(x.detach())
        if out.shape != x.shape:
            raise ValueError(f"input transform returned shape {tuple(out.shape)} for a batch {tuple(x.shape)}")
        return out.to(dtype=x.dtype, device=x.device)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return (torch.zeros_like(grad) if ctx.naive else grad), None, None


def bpda(fn: Transform, x: torch.Tensor, naive: bool = False) -> torch.Tensor:
    """fn(x) in the forward pass; in the backward pass the identity's gradient (BPDA), or zero when naive."""
    return _StraightThrough.apply(x, fn, naive)


def numpy_transform(fn: Callable[[np.ndarray], np.ndarray]) -> Transform:
    """A float32 numpy batch transform (e.g. an ART preprocessor call) as a tensor transform: numpy only inside."""
    def transform(x: torch.Tensor) -> torch.Tensor:
        out = fn(x.detach().float().cpu().numpy())
        return torch.as_tensor(np.asarray(out, dtype=np.float32)).to(device=x.device, dtype=x.dtype)
    return transform


class TransformedModel(nn.Module):
    """A model behind an input transform, attacked through BPDA (and EOT over `samples` draws when random)."""

    def __init__(self, model: nn.Module, transform: Transform, *, random: bool = False, samples: int = 1,
                 naive: bool = False) -> None:
        super().__init__()
        if samples < 1:
            raise ValueError(f"EOT needs at least one sample, got {samples}")
        self.model = model
        self.transform = transform
        self.random = random
        self.samples = samples if random else 1  # a deterministic transform gives the same draw every time
        self.naive = naive

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the model on the transformed batch; averaged over EOT draws while a gradient is taken."""
        draws = self.samples if (torch.is_grad_enabled() and x.requires_grad and not self.naive) else 1
        logits = self.model(bpda(self.transform, x, self.naive))
        for _ in range(draws - 1):
            logits = logits + self.model(bpda(self.transform, x, self.naive))
        return logits / draws if draws > 1 else logits

    def extra_repr(self) -> str:
        return f"random={self.random}, samples={self.samples}, naive={self.naive}"
