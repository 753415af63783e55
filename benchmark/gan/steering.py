"""Pieces both GAN presets share: batch sampling, the study's augmentation of a batch, and the white-box steer."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.gan.zhou2021 import study_augment

__all__ = ["sample_batch", "classifier_steer"]


def sample_batch(images: torch.Tensor, batch_size: int, rng: np.random.Generator, device: torch.device,
                 augment: torch.Generator | None = None) -> torch.Tensor:
    """A random batch of `images` on device (with replacement only when there are fewer images than the batch),
    augmented the study's way when a torch generator for its draws is given."""
    n = len(images)
    x = images[rng.choice(n, size=min(batch_size, n), replace=n < batch_size)]
    if augment is not None:
        x = study_augment(x, augment)
    return x.to(device, non_blocking=True)


def classifier_steer(classifier: nn.Module, fake: torch.Tensor, target_label: int) -> torch.Tensor:
    """White-box term: cross-entropy of the attacked classifier towards the target class, plus softplus of a
    detecting model's "manipulated" logit (a white-box attacker evades the detection head too)."""
    target = torch.full((len(fake),), target_label, dtype=torch.long, device=fake.device)
    logits = classifier(fake).float()
    steer = F.cross_entropy(logits[:, :2], target)
    if logits.shape[1] > 2:
        steer = steer + F.softplus(logits[:, 2]).mean()
    return steer
