"""A test-only plugin package joined via entry points: a tiny data set, broken attacks, a constant model, and
defenses that test the checks (8-bit rounding, random noise with EOT, a wrap under no_grad)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmark.attacking.adaptive import TransformedModel
from benchmark.data.imageset import ImageSet
from benchmark.entry_api import Defense
from benchmark.options import Option


def tiny_blobs(spec, workdir: Path) -> ImageSet:
    """Tiny test set: blocky noise; positives carry a bright disc."""
    n = int(spec.options.get("count", 96))
    s = spec.image_size
    rng = np.random.default_rng(spec.seed)
    noise = rng.normal(0.4, 0.08, (n, 1, s // 4, s // 4)).repeat(4, 2).repeat(4, 3)
    labels = np.arange(n) % 2
    yy, xx = np.mgrid[:s, :s]
    masks = np.zeros((n, 1, s, s), np.uint8)
    for i in np.flatnonzero(labels):
        cy, cx = rng.integers(s // 4, 3 * s // 4, 2)
        masks[i, 0] = (yy - cy) ** 2 + (xx - cx) ** 2 <= (s // 8) ** 2
    images = np.clip(noise + 0.35 * masks, 0, 1).astype(np.float32)
    ids = np.array([f"img{i:04d}" for i in range(n)])
    return ImageSet(images, labels.astype(np.int64), masks, ids, ids.copy(), None, {"positive": "bright disc"})


tiny_blobs.options = {"count": Option(96, int, "images", low=2)}  # an entry-point data set declares its options


def broken_attack(model, x, y, eps, ctx) -> torch.Tensor:
    """An attack that always fails, to show that a failing cell does not stop the matrix."""
    raise RuntimeError("this attack is broken on purpose")


broken_attack.threat = "linf"  # an entry-point attack declares its threat model as attributes (refused without)
broken_attack.budgets = ("1/255",)


def wrong_shape_attack(model, x, y, eps, ctx) -> torch.Tensor:
    """An attack that returns the wrong shape."""
    return x[:, :, :-1]


wrong_shape_attack.threat = "linf"
wrong_shape_attack.budgets = ("1/255",)


def threatless_attack(model, x, y, eps, ctx) -> torch.Tensor:
    """An entry-point attack that declares no threat model: refused when its entry point loads."""
    return x


class _Constant(torch.nn.Module):
    """Logits that ignore the image: a learnt bias (the class prior) plus zero times the input."""

    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(len(x), -1) + 0.0 * x.flatten(1).sum(1, keepdim=True)


def constant_model(image_size: int, **options) -> torch.nn.Module:
    """A constant classifier: the same decision for every image (a robust-accuracy baseline that learnt nothing)."""
    return _Constant(int(options.get("num_classes", 2)))


class _Rounded(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.round(x * 255) / 255)  # d round / dx = 0: every input gradient vanishes


class Round8Bit(Defense):
    """Inputs rounded to 8 bits inside the model, declared differentiable: a dishonest defense (zero gradients)."""

    claims = ("linf",)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return _Rounded(model)


class RandomNoiseEOT(Defense):
    """Gaussian noise on every input, deployed honestly: behind TransformedModel with EOT over 4 draws."""

    differentiable = False
    claims = ("linf",)
    options_spec = {"sigma": Option(0.02, float, "noise standard deviation", low=0)}

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        sigma = float(self.settings["sigma"])
        return TransformedModel(model, lambda x: (x + sigma * torch.randn_like(x)).clamp(0, 1), random=True,
                                samples=4)


class _NoGrad(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model(x)


class NoGradWrap(Defense):
    """A wrap that runs the model under no_grad: gradients are blocked, gradient attacks cannot run."""

    claims = ("linf",)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return _NoGrad(model)
