"""What the input-transformation defenses share: options, the transform on training batches, the BPDA wrapper."""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from benchmark.attacking.adaptive import Transform, TransformedModel
from benchmark.entry_api import Defense

from ._options import Option

__all__ = ["InputTransformDefense"]


class InputTransformDefense(Defense):
    """Base of the input transformations: deploys model(transform(x)); attacks go through BPDA, never naively."""

    differentiable = False  # the engine's gradient attacks reach it through BPDA (benchmark/attacking/adaptive.py)
    claims = ("linf", "l2")
    name = "input-transform"
    options_spec: ClassVar[dict[str, Option]] = {}
    apply_fit = False  # ART's default for this transform: also transform the training batches

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every input transformation also takes `apply_fit` (default: the class's own apply_fit)."""
        super().__init_subclass__(**kwargs)
        own = {k: v for k, v in cls.options_spec.items() if k != "apply_fit"}
        cls.options_spec = {**own, "apply_fit": Option(cls.apply_fit, bool, "also transform every training batch")}

    def transform(self) -> Transform:
        """The transform, (B,1,H,W) float in [0,1] -> the same shape, dtype and device."""
        raise NotImplementedError

    def training_batch(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                       step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The transformed batch when apply_fit (train on what the deployed model sees), else unchanged."""
        if not self.settings["apply_fit"]:
            return x, y
        with torch.no_grad():
            return self.transform()(x), y

    def wrap(self, model: nn.Module, *, naive: bool = False) -> nn.Module:
        """model behind the transform; gradients pass straight through it (BPDA), or are zero when naive."""
        return TransformedModel(model, self.transform(), naive=naive)

    def describe(self) -> dict[str, Any]:
        """The base facts plus the resolved options and how the transform is attacked."""
        return {**super().describe(), "options": dict(self.settings), "attacked_with": "BPDA (straight-through)"}
