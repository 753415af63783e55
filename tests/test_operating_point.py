"""One operating point: attacks aim at the threshold a cell is scored at, not at argmax."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.attacking.attack_call import call_attack
from benchmark.attacking.operating_point import AtThreshold, at_threshold, logit_shift
from benchmark.attacking.torch_attacks import fooled
from benchmark.entry_api import AttackContext
from benchmark.registry import get_component
from benchmark.training.inference import predict_proba

THRESHOLD = 0.13


class _Linear(nn.Module):
    """A fixed linear scorer on 16x16 images: positive logit = w . x + b, negative logit 0."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.randn(1, 1, 16, 16, generator=g) * 0.6)
        self.b = nn.Parameter(torch.tensor(-0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x * self.w).flatten(1).sum(1) + self.b
        return torch.stack([torch.zeros_like(z), z], dim=1)


def _batch(n: int = 256, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 16, 16, generator=g) * 0.6 + 0.2
    return x, torch.arange(n) % 2


@pytest.mark.parametrize("threshold", [THRESHOLD, 0.3, 0.5, 0.77, 0.9])
def test_argmax_of_the_shifted_model_is_the_thresholded_decision(threshold: float) -> None:
    model = _Linear().eval()
    x, _ = _batch()
    p = predict_proba(model, x, torch.device("cpu"))
    with torch.no_grad():
        decided = at_threshold(model, threshold)(x).argmax(1).numpy()
    assert np.array_equal(decided, (p >= threshold).astype(int))
    assert (p >= threshold).any() and (p < threshold).any()  # both decisions occur: the check can fail


def test_half_is_the_model_itself_and_extra_outputs_are_kept() -> None:
    model = _Linear()
    assert at_threshold(model, 0.5) is model and logit_shift(0.5) == 0.0
    wrapped = AtThreshold(nn.Sequential(nn.Flatten(), nn.Linear(256, 3)), 0.2)
    x, _ = _batch(8)
    with torch.no_grad():
        raw, shifted = wrapped.model(x), wrapped(x)
    assert torch.allclose(shifted[:, 2], raw[:, 2]) and torch.allclose(shifted[:, 0], raw[:, 0])
    assert torch.allclose(raw[:, 1] - shifted[:, 1], torch.full((8,), logit_shift(0.2)))


def _robust_at_threshold(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor) -> int:
    cpu = torch.device("cpu")
    clean = (predict_proba(model, x, cpu) >= THRESHOLD).astype(int) == y.numpy()
    adv = (predict_proba(model, x_adv, cpu) >= THRESHOLD).astype(int) == y.numpy()
    return int((clean & adv).sum())


@pytest.mark.parametrize("attack,options,skips_fooled", [("pgd-linf", {}, False), ("square", {"queries": 100}, True)])
def test_attacks_aimed_at_the_threshold_leave_fewer_images_robust(attack: str, options: dict,
                                                                   skips_fooled: bool) -> None:
    """Positives with P between the threshold and 0.5 are correct when scored but 'fooled already' at argmax: an
    argmax attack leaves them untouched and they count as robust; aimed at the threshold, the attack works on them."""
    model = _Linear().eval()
    x, y = _batch()
    p = predict_proba(model, x, torch.device("cpu"))
    between = (p >= THRESHOLD) & (p < 0.5) & (y.numpy() == 1)
    assert between.sum() >= 10  # the two operating points disagree on enough images
    entry = get_component("attacks", attack)
    eps = 8 / 255
    runs = {}
    for name, target in (("argmax", model), ("threshold", at_threshold(model, THRESHOLD))):
        ctx = AttackContext(torch.device("cpu"), seed=0, options=dict(options), batch_size=256)
        runs[name] = call_attack(entry, target, x, y, eps, ctx)
    if skips_fooled:  # Square (ART) never touches an image it counts as fooled already: at argmax, these
        untouched = (runs["argmax"] - x).flatten(1).abs().amax(1).numpy() == 0
        assert untouched[between].all()
    moved = (runs["threshold"] - x).flatten(1).abs().amax(1).numpy() > 0
    assert moved[between].mean() > 0.9
    before = _robust_at_threshold(model, x, runs["argmax"], y)
    after = _robust_at_threshold(model, x, runs["threshold"], y)
    assert after < before if skips_fooled else after <= before
    # and the attack's own success criterion now agrees with scoring
    shifted = at_threshold(model, THRESHOLD)
    scored_wrong = (predict_proba(model, runs["threshold"], torch.device("cpu")) >= THRESHOLD).astype(int) != y.numpy()
    assert np.array_equal(fooled(shifted, runs["threshold"], y).numpy(), scored_wrong)
