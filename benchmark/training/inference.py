"""Batched prediction: P(positive) for a stack of images, on the model's device, with AMP on CUDA."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from benchmark.device import autocast
from benchmark.memory_fit import fit_batch, micro_batches

__all__ = ["MANIPULATED_OUTPUT", "predict_proba", "predict_manipulation", "positive_probability"]

MANIPULATED_OUTPUT = 2  # a detecting model's third output: the logit of its "manipulated" head (flagged when > 0)


def positive_probability(logits: torch.Tensor) -> torch.Tensor:
    """P(positive) from 2-class logits (extra outputs, e.g. a 'manipulated' class, are ignored here)."""
    return torch.softmax(logits.float()[:, :2], dim=1)[:, 1]


@torch.no_grad()
def _per_image(model: nn.Module, images: np.ndarray | torch.Tensor, device: torch.device, batch_size: int,
               read: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
    """read(logits) for every image, in eval mode and batches that fit (AMP on CUDA), as float64 numpy."""
    model.eval()
    out = []
    if len(images):  # the largest batch up to batch_size that fits the free memory; never a lone image (same bits)
        def probe() -> None:
            with autocast(device):
                model(torch.as_tensor(images[:1]).to(device))
        batch_size = fit_batch("predict", batch_size, probe, device, None).used
    for piece in micro_batches(len(images), batch_size):
        batch = torch.as_tensor(images[piece]).to(device, non_blocking=True)
        with autocast(device):
            out.append(read(model(batch)).float().cpu())
    return torch.cat(out).double().numpy() if out else np.zeros(0)


def predict_proba(model: nn.Module, images: np.ndarray | torch.Tensor, device: torch.device,
                  batch_size: int = 128) -> np.ndarray:
    """P(positive) for every image, as float64 numpy."""
    return _per_image(model, images, device, batch_size, positive_probability)


def predict_manipulation(model: nn.Module, images: np.ndarray | torch.Tensor, device: torch.device,
                         batch_size: int = 128) -> np.ndarray:
    """A detecting model's "manipulated" logit for every image (flagged when > 0), as float64 numpy."""
    return _per_image(model, images, device, batch_size, lambda logits: logits[:, MANIPULATED_OUTPUT])
