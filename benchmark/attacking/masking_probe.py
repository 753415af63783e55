"""A probe of the deployed model for gradient masking: input-gradient norms and randomness in inference.

Kept apart from `masking_checks` (which judges the probe and the score rows) so that tuning a check's threshold
never changes the cache key of the train stage that runs this probe.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from benchmark.attacking.adaptive import TransformedModel

__all__ = ["PROBE_IMAGES", "ZERO_NORM", "eot_samples", "gradient_probe"]

PROBE_IMAGES = 64  # validation images the probe looks at
ZERO_NORM = 1e-12  # an input-gradient L2 norm at or below this counts as zero


def eot_samples(model: nn.Module) -> int:
    """The most EOT draws any random input transform of the deployed model averages when attacked (1: none)."""
    return max([m.samples for m in model.modules() if isinstance(m, TransformedModel) and m.random] + [1])


def gradient_probe(model: nn.Module, images: np.ndarray, labels: np.ndarray, device: torch.device,
                   n: int = PROBE_IMAGES) -> dict:
    """Per-image input-gradient norms of the loss (zero fraction, median) and whether two predictions differ."""
    model.eval()
    x = torch.as_tensor(np.asarray(images[:n], dtype=np.float32)).to(device)
    y = torch.as_tensor(np.asarray(labels[:n]), dtype=torch.long).to(device)
    if len(x) == 0:
        return {"n": 0}
    grad = None
    with torch.enable_grad():
        x_grad = x.clone().requires_grad_(True)
        # sum, not mean: each image's gradient is that of its own loss
        loss = F.cross_entropy(model(x_grad).float()[:, :2], y, reduction="sum")
        blocked = not loss.requires_grad  # no grad_fn: the deployed model cuts autograd (e.g. wrap under no_grad)
        if not blocked:
            (grad,) = torch.autograd.grad(loss, x_grad, allow_unused=True)
    norms = (torch.zeros(len(x)) if grad is None else grad.detach().double().flatten(1).norm(dim=1).cpu()).numpy()
    with torch.no_grad():
        first = torch.softmax(model(x).float()[:, :2], dim=1)[:, 1]
        second = torch.softmax(model(x).float()[:, :2], dim=1)[:, 1]
    diff = float((first - second).abs().max())
    finite = norms[np.isfinite(norms)]
    return {
        "n": len(x),
        "grad_blocked": bool(blocked),
        "grad_zero_fraction": float((norms <= ZERO_NORM).mean()),
        "grad_norm_median": float(np.median(finite)) if finite.size else None,
        "grad_norm_min": float(finite.min()) if finite.size else None,
        "grad_nonfinite": int((~np.isfinite(norms)).sum()),
        "prediction_max_abs_diff": diff,  # P(positive), two passes over the same batch
    }
