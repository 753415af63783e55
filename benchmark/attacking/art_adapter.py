"""The one place that speaks ART: wrap a torch model as an ART estimator, run an ART attack, return tensors.

numpy appears only here, at the boundary of each ART call; images stay float32 in [0,1] (never rounded to 8 bits).
ART's side effects are undone: the model's train/eval modes and its parameters' .grad are restored afterwards,
and the global numpy/torch random state is seeded from the batch seed for the call and then put back.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmark.attacking.torch_attacks import eval_mode
from benchmark.device import autocast
from benchmark.entry_api import AttackContext
from benchmark.errors import BenchmarkError

__all__ = ["art_classifier", "art_generate"]


class _TwoClassLogits(nn.Module):
    """The model's first two logits (the benchmark's decision; extra heads are ignored), bf16 autocast on CUDA."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(x.device):
            logits = self.model(x)
        return logits[:, :2].float()


def art_classifier(model: nn.Module, input_shape: tuple[int, ...], device: torch.device,
                   nb_classes: int = 2) -> Any:
    """ART's PyTorchClassifier around model's 2-class logits, inputs clipped to the [0,1] intensity scale."""
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(model=_TwoClassLogits(model), loss=nn.CrossEntropyLoss(), input_shape=input_shape,
                             nb_classes=nb_classes, clip_values=(0.0, 1.0),
                             device_type="gpu" if device.type == "cuda" else "cpu")


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """numpy's and torch's global generators seeded with seed inside the block, their old states restored after."""
    state = np.random.get_state()
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    np.random.seed(seed % 2**32)
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield
    finally:
        np.random.set_state(state)


@contextlib.contextmanager
def _kept_grads(model: nn.Module) -> Iterator[None]:
    """ART's loss_gradient calls loss.backward(): put every parameter's .grad back as it was."""
    saved = [(p, p.grad) for p in model.parameters()]
    try:
        yield
    finally:
        for p, g in saved:
            p.grad = g


def art_generate(make_attack: Callable[[Any], Any], model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 ctx: AttackContext, name: str = "art") -> torch.Tensor:
    """Run an ART evasion attack built by make_attack(estimator) on (x, y); float32 out, no 8-bit rounding.

    The attack runs in eval mode with the batch seed; an attack that ART cannot build for this model or these
    settings becomes a BenchmarkError naming the attack `name`.
    """
    from art.exceptions import EstimatorError

    with eval_mode(model), _kept_grads(model), _seeded(ctx.seed, x.device):
        classifier = art_classifier(model, tuple(x.shape[1:]), x.device)
        try:
            attack = make_attack(classifier)
        except EstimatorError as exc:
            raise BenchmarkError(f"attack {name} cannot attack this model: {exc}") from None
        except (ValueError, TypeError) as exc:
            raise BenchmarkError(f"attacks.{name}.options: ART refused these settings: {exc}") from None
        x_np = x.detach().float().cpu().numpy()
        y_onehot = np.eye(2, dtype=np.float32)[y.detach().cpu().numpy()]
        x_adv = attack.generate(x=x_np, y=y_onehot)
    return torch.as_tensor(np.asarray(x_adv, dtype=np.float32), device=x.device)
