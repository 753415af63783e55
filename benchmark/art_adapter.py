"""The one place that speaks ART: wrap a torch model as an ART estimator, run an ART attack, return tensors."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from benchmark.entry_api import AttackContext

__all__ = ["art_classifier", "art_generate"]


def art_classifier(model: nn.Module, input_shape: tuple[int, ...], device: torch.device,
                   nb_classes: int = 2) -> Any:
    """ART's PyTorchClassifier around model, inputs clipped to the [0,1] intensity scale."""
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=input_shape,
                             nb_classes=nb_classes, clip_values=(0.0, 1.0),
                             device_type="gpu" if device.type == "cuda" else "cpu")


def art_generate(make_attack: Callable[[Any], Any], model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 ctx: AttackContext) -> torch.Tensor:
    """Run an ART evasion attack built by make_attack(estimator) on (x, y); float32 out, no 8-bit rounding."""
    model.eval()
    classifier = art_classifier(model, tuple(x.shape[1:]), ctx.device)
    attack = make_attack(classifier)
    x_np = x.detach().float().cpu().numpy()
    y_onehot = np.eye(2, dtype=np.float32)[y.detach().cpu().numpy()]
    x_adv = attack.generate(x=x_np, y=y_onehot)
    return torch.as_tensor(np.asarray(x_adv, dtype=np.float32), device=x.device)
