"""What an attack and a defense entry look like: the small contract contributors implement."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

__all__ = ["AttackContext", "Defense", "LossFn", "THREATS", "ACCESS"]

THREATS = ("linf", "l2", "semantic")
ACCESS = ("white-box", "black-box", "transfer")
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]  # loss(model, x, y)


@dataclass
class AttackContext:
    """What an attack may use besides (model, x, y, eps): device, seed, lesion masks, options, batch size."""

    device: torch.device
    seed: int
    masks: torch.Tensor | None = None  # (B, 1, H, W) lesion masks of this batch, same device
    options: dict = field(default_factory=dict)
    batch_size: int = 64
    differentiable: bool = True  # False when the defended model needs BPDA/EOT to be attacked honestly
    fakes: torch.Tensor | None = None  # (B, 1, H, W) pre-generated GAN fakes of this batch (attacks with needs="fakes")
    generator: torch.Generator | None = None  # seeded with `seed` on the batch's device, set by call_attack


class Defense:
    """Base class for defenses: override what you change. Declare `differentiable`, `claims` and `options_spec`.

    `options_spec` maps each option the defense takes to a benchmark.options.Option (default, type, one-line doc,
    limits); {} means it takes none. The engine checks a config's options against it before anything runs, and
    `self.settings` holds them checked, defaults filled in.
    """

    differentiable: bool = True  # False: the engine attacks it adaptively (BPDA/EOT), never naively
    claims: tuple[str, ...] = ("linf", "l2", "semantic")  # threat models this defense claims to help against
    options_spec: ClassVar[dict] = {}  # option name -> benchmark.options.Option; {}: takes no options
    name: str = ""  # the registered name, for error messages (default: the class name)

    def __init__(self, options: dict | None = None) -> None:
        from benchmark.options import read_options

        self.options = dict(options or {})
        self.settings = read_options(self.name or type(self).__name__, self.options, self.options_spec,
                                     kind="defenses")

    def training_batch(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                       step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Change a training batch (adversarial training, augmentation); default: unchanged."""
        return x, y

    def training_loss(self, loss: LossFn) -> LossFn:
        """The loss(model, x, y) to train with, given the model's own; default: unchanged (a defense with extra
        outputs or its own label codes, such as gan-fakes-detect, adapts it here)."""
        return loss

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model as deployed (input transformation, detector); default: the model itself."""
        return model

    def describe(self) -> dict[str, Any]:
        """JSON-able facts for the leaderboard entry."""
        return {"differentiable": self.differentiable, "claims": list(self.claims), "options": self.options}


def as_numpy(t: torch.Tensor) -> np.ndarray:
    """A tensor as a float32 numpy array (I/O boundary only)."""
    return t.detach().float().cpu().numpy()
