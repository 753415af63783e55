"""The lesion GAN's networks: a whole-image U-Net generator and a discriminator grown from the classifier's features."""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from benchmark.device import autocast
from benchmark.errors import BenchmarkError
from benchmark.memory_fit import micro_batches

__all__ = ["DIRECTIONS", "UNetGenerator", "FeatureDiscriminator", "apply_generators", "backbone_of"]

DIRECTIONS = {"insert": (0, 1), "remove": (1, 0)}  # name: (source label, target label)


class _DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(min(8, cout), cout),
                         nn.LeakyReLU(0.2, inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.GroupNorm(min(8, cout), cout),
                         nn.LeakyReLU(0.2, inplace=True))


class UNetGenerator(nn.Module):
    """U-Net on the whole image: 1 channel in and out, `levels` levels, bilinear upsampling, sigmoid output.

    With `logit_skip` the last layer adds to logit(x) before the sigmoid, so the untrained network is the identity
    and identity pretraining converges at once; without it the network is the plain U-Net of the study.
    """

    def __init__(self, base: int = 16, levels: int = 3, logit_skip: bool = True) -> None:
        super().__init__()
        if levels < 1 or base < 4:
            raise BenchmarkError(f"U-Net needs levels >= 1 and base >= 4 channels, got levels={levels}, base={base}")
        widths = [base * 2 ** i for i in range(levels + 1)]
        self.levels = levels
        self.inc = _DoubleConv(1, widths[0])
        self.down = nn.ModuleList(_DoubleConv(widths[i], widths[i + 1]) for i in range(levels))
        self.up = nn.ModuleList(_DoubleConv(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(levels)))
        self.out = nn.Conv2d(widths[0], 1, 1)
        self.logit_skip = logit_skip
        # recompute each level's activations in backward instead of keeping them (torch.utils.checkpoint): same
        # gradients bit for bit, about a third less training memory for about a quarter more time (1024 px, CPU;
        # benchmarks/results/checkpointing.json); off unless the trainer turns it on
        self.checkpoint_blocks = False
        if logit_skip:  # start as the identity: the edit is a change of the input's logit, zero at first
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The edited image, same shape as x, in (0, 1)."""
        side = 2 ** self.levels
        h, w = x.shape[-2:]
        if h % side or w % side:
            raise BenchmarkError(f"U-Net with {self.levels} levels needs image sides divisible by {side}, got {h}x{w}")
        skips = [self._block(self.inc, x)]
        for block in self.down:
            skips.append(self._block(block, F.avg_pool2d(skips[-1], 2)))
        y = skips.pop()
        for block in self.up:
            skip = skips.pop()
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = self._block(block, torch.cat([y, skip], dim=1))
        y = self.out(y)
        if self.logit_skip:  # background (0) stays 0 and edits stay within the image's own intensity range
            y = y + torch.logit(x.clamp(1e-4, 1 - 1e-4))
        return torch.sigmoid(y)

    def _block(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.checkpoint_blocks and torch.is_grad_enabled():
            return checkpoint(block, x, use_reentrant=False)
        return block(x)


def backbone_of(model: nn.Module) -> nn.Module:
    """The timm classifier inside a (possibly defense-wrapped) deployed model."""
    for module in model.modules():
        if hasattr(module, "forward_features") and hasattr(module, "reset_classifier"):
            return module
    raise BenchmarkError(f"{type(model).__name__} holds no timm classifier (forward_features + reset_classifier); "
                         "the GAN discriminator starts from the classifier's feature extractor")


class FeatureDiscriminator(nn.Module):
    """Real/fake critic: a copy of the classifier's feature extractor with a new one-logit head."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.net = copy.deepcopy(backbone_of(classifier))
        self.net.reset_classifier(1)
        for p in self.net.parameters():
            p.requires_grad_(True)

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters of the new real/fake head (trained alone in the head stage)."""
        head = self.net.get_classifier()
        return list(head.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One real/fake logit per image (positive: looks real)."""
        return self.net(x).reshape(-1)


@torch.no_grad()
def apply_generators(generators: dict[str, UNetGenerator], images: np.ndarray, labels: np.ndarray,
                     device: torch.device, batch_size: int = 64) -> np.ndarray:
    """Fakes for every image: negatives through `insert`, positives through `remove` (float32, no quantisation)."""
    out = np.empty_like(images, dtype=np.float32)
    for name, (source, _) in DIRECTIONS.items():
        idx = np.flatnonzero(np.asarray(labels) == source)
        gen = generators[name].eval()
        for piece in micro_batches(len(idx), batch_size):  # no lone image: same bits at any batch size
            part = idx[piece]
            x = torch.as_tensor(images[part], dtype=torch.float32).to(device)
            with autocast(device):
                out[part] = gen(x).float().clamp(0, 1).cpu().numpy()
    return out
