"""Gradient-masking checks: hand-made rows that trip each check, and rows that trip none."""
from __future__ import annotations

import numpy as np
import torch
from leaderboard_rows import PROBE, PROVENANCE, make_row, matrix, robust_flags

from benchmark.leaderboard import board_entries, build_entries
from benchmark.masking_checks import evaluate, significantly_lower
from benchmark.masking_probe import gradient_probe


def _entry(cells: list) -> dict:
    (entry,) = build_entries(cells, "test-set", PROVENANCE)
    return entry


def _tripped(entry: dict) -> dict[str, str]:
    return {c["check"]: c["reason"] for c in entry["masking_checks"] if c["tripped"]}


def test_a_plausible_defense_trips_nothing() -> None:
    entry = _entry(matrix())
    assert _tripped(entry) == {}
    assert all(c["evaluated"] for c in entry["masking_checks"])
    assert entry["unreliable"] is False and entry["unreliable_reason"] is None


def test_zero_and_vanishing_gradients() -> None:
    zero = _entry(matrix(probe={**PROBE, "grad_zero_fraction": 0.5}))
    assert _tripped(zero) == {"zero-gradients": "zero input gradients on 50% of 64 validation images"}
    assert zero["unreliable"] and zero["unreliable_reason"] == "zero input gradients on 50% of 64 validation images"
    vanishing = _entry(matrix(probe={**PROBE, "grad_norm_median": 1e-11}))
    assert "vanishing input gradients (median L2 norm 1e-11" in _tripped(vanishing)["zero-gradients"]
    unknown = _entry(matrix(probe=None))
    check = {c["check"]: c for c in unknown["masking_checks"]}
    assert not check["zero-gradients"]["evaluated"] and not check["random-inference"]["evaluated"]
    assert not unknown["unreliable"]


def test_black_box_beating_white_box_beyond_noise() -> None:
    cells = matrix()
    cells[4] = make_row("resnet10t", "none", "square", 2 / 255, robust_flags(30), access="black-box")
    entry = _entry(cells)
    reason = _tripped(entry)["black-box-beats-white-box"]
    assert reason.startswith("black-box square@2/255 leaves 15.0% (30/200) robust, below the white-box attacks at "
                             "that budget (fgsm@2/255, pgd-linf@2/255: 30.0% (60/200); McNemar p=")
    # the linf board is unreliable, the GAN board is not (the check is about pixel attacks)
    assert board_entries([entry], "linf")[0]["unreliable"]
    assert not board_entries([entry], "semantic")[0]["unreliable"]
    # a black-box attack a few images better than white-box is noise
    cells[4] = make_row("resnet10t", "none", "square", 2 / 255, robust_flags(57), access="black-box")
    assert "black-box-beats-white-box" not in _tripped(_entry(cells))


def test_robust_accuracy_that_does_not_fall_or_rises_with_budget() -> None:
    cells = matrix()
    cells[1] = make_row("resnet10t", "none", "fgsm", 2 / 255, robust_flags(118))  # 120 -> 118: no real fall
    reason = _tripped(_entry(cells))["budget-does-not-help"]
    assert reason.startswith("fgsm: robust accuracy does not fall as the budget grows (60.0% (120/200) at "
                             "fgsm@1/255, 59.0% (118/200) at fgsm@2/255; McNemar p=")
    cells[1] = make_row("resnet10t", "none", "fgsm", 2 / 255, robust_flags(170))  # more robust at a larger budget
    assert "fgsm: robust accuracy rises from 60.0% (120/200) at fgsm@1/255 to 85.0% (170/200) at fgsm@2/255" in \
        _tripped(_entry(cells))["budget-does-not-help"]
    # nothing left to fall: 3 robust images at the smallest budget cannot fall significantly
    cells[0] = make_row("resnet10t", "none", "fgsm", 1 / 255, robust_flags(3))
    cells[1] = make_row("resnet10t", "none", "fgsm", 2 / 255, robust_flags(3))
    assert "budget-does-not-help" not in _tripped(_entry(cells))


def test_randomised_inference() -> None:
    entry = _entry(matrix(probe={**PROBE, "prediction_max_abs_diff": 0.2}))
    assert _tripped(entry) == {"random-inference": "randomised inference: two passes over the same images differ by "
                                                   "up to 0.2 in P(positive) (attacks did not use EOT)"}


def test_without_per_image_flags_intervals_decide() -> None:
    cells = matrix()
    cells[4] = make_row("resnet10t", "none", "square", 2 / 255, robust_flags(30), access="black-box")
    entry = _entry(cells)
    entry["per_image"] = None
    checks = {c["check"]: c for c in evaluate(entry)}
    assert checks["black-box-beats-white-box"]["tripped"]
    assert "Wilson intervals disjoint" in checks["black-box-beats-white-box"]["reason"]
    low = {"value": 0.5, "lo": 0.43, "hi": 0.57}
    assert significantly_lower(None, None, low, {"value": 0.55, "lo": 0.48, "hi": 0.62}) == (
        False, "Wilson intervals overlap")


class _Constant(torch.nn.Module):
    """Logits that ignore the input: a gradient of exactly zero."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = torch.nn.Parameter(torch.tensor([0.3, -0.3]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(len(x), 2) + 0 * x.detach().flatten(1)[:, :2]


class _Noisy(torch.nn.Module):
    """A linear model behind random input noise, also in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((x + 0.1 * torch.randn_like(x)).flatten(1))


def test_the_probe_sees_zero_gradients_and_randomness() -> None:
    images = np.random.default_rng(0).random((10, 1, 4, 4)).astype(np.float32)
    labels = np.arange(10) % 2
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    plain = gradient_probe(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)), images, labels, cpu)
    assert plain["n"] == 10 and plain["grad_zero_fraction"] == 0 and plain["grad_norm_median"] > 1e-3
    assert plain["prediction_max_abs_diff"] == 0
    constant = gradient_probe(_Constant(), images, labels, cpu)
    assert constant["grad_zero_fraction"] == 1.0 and constant["grad_norm_median"] == 0
    noisy = gradient_probe(_Noisy(), images, labels, cpu, n=4)
    assert noisy["n"] == 4 and noisy["prediction_max_abs_diff"] > 1e-4
    (entry,) = build_entries(matrix(probe=constant), "test-set", PROVENANCE)
    assert _tripped(entry)["zero-gradients"].startswith("zero input gradients on 100% of 10 validation images")
