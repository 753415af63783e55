"""Gradient-masking checks: hand-made rows that trip each check, and rows that trip none."""
from __future__ import annotations

import numpy as np
import torch
from leaderboard_rows import PROBE, PROVENANCE, N, make_row, matrix, robust_flags

from benchmark.attacking.masking_probe import gradient_probe
from benchmark.leaderboard.board import board_entries, build_entries
from benchmark.leaderboard.checks import evaluate, significantly_lower


def _entry(cells: list) -> dict:
    (entry,) = build_entries(cells, "test-set", PROVENANCE)
    return entry


def _tripped(entry: dict) -> dict[str, str]:
    return {c["check"]: c["reason"] for c in entry["masking_checks"] if c["tripped"]}


def test_a_plausible_defense_trips_nothing() -> None:
    entry = _entry(matrix())
    assert _tripped(entry) == {}
    assert all(c["evaluated"] for c in entry["masking_checks"])
    assert entry["unreliable"] is False and entry["unreliable_reason"] is None and entry["marks"] == []
    assert entry["rank"] == 1
    assert all(c["doc"] == f"docs/checks.md#{c['check']}" for c in entry["masking_checks"])


def test_zero_and_vanishing_gradients() -> None:
    zero = _entry(matrix(probe={**PROBE, "grad_zero_fraction": 0.5}))
    reason = "zero gradients: zero input gradients on 50% of 64 validation images"
    assert _tripped(zero) == {"zero-gradients": reason}
    assert zero["unreliable"] and zero["unreliable_reason"] == reason and zero["rank"] is None
    for board in ("linf", "semantic"):  # a model-level reason concerns every board
        assert board_entries([zero], board)[0]["unreliable_reason"] == reason
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
    # the linf board is unreliable, the GAN board is not (an attack-level check concerns its own board)
    assert board_entries([entry], "linf")[0]["unreliable"] and board_entries([entry], "linf")[0]["rank"] is None
    assert not board_entries([entry], "semantic")[0]["unreliable"]
    assert board_entries([entry], "semantic")[0]["rank"] == 1
    # a black-box attack a few images better than white-box is noise
    cells[4] = make_row("resnet10t", "none", "square", 2 / 255, robust_flags(57), access="black-box")
    assert "black-box-beats-white-box" not in _tripped(_entry(cells))


def test_robust_accuracy_that_rises_with_budget_and_small_budgets_that_do_not_fall() -> None:
    cells = matrix()
    cells[1] = make_row("resnet10t", "none", "fgsm", 2 / 255, robust_flags(118))  # 120 -> 118: no real fall
    assert _tripped(_entry(cells)) == {}  # two small budgets close together are not evidence of masking
    cells[1] = make_row("resnet10t", "none", "fgsm", 2 / 255, robust_flags(170))  # more robust at a larger budget
    assert "fgsm: robust accuracy rises from 60.0% (120/200) at fgsm@1/255 to 85.0% (170/200) at fgsm@2/255" in \
        _tripped(_entry(cells))["budget-raises-robustness"]


def test_a_large_budget_that_leaves_the_model_above_chance_demotes() -> None:
    cells = matrix()
    cells[-1] = make_row("resnet10t", "none", "pgd-linf", 32 / 255, robust_flags(150), role="sanity")
    entry = _entry(cells)
    reason = _tripped(entry)["large-budget-sanity"]
    assert reason.startswith("attack not reaching the model: pgd-linf@32/255 (white-box, a budget no model resists) "
                             "leaves robust balanced accuracy at 75.0%")
    assert entry["rank"] is None and board_entries([entry], "linf")[0]["unreliable"]
    assert not board_entries([entry], "semantic")[0]["unreliable"]
    # the sanity cell is on no board: not in attacks, not in the worst case
    assert "pgd-linf@32/255" not in {a["cell"] for a in entry["attacks"]}
    assert entry["sanity"][0]["cell"] == "pgd-linf@32/255"
    assert entry["worst_case_robust_accuracy"]["successes"] == 50


def test_a_model_at_chance_is_listed_never_ranked() -> None:
    chance = np.zeros(N, bool)
    chance[1::2] = True  # every positive right, every negative wrong: a constant "positive"
    cells = [make_row("constant", "none", a, b, robust_flags(100, chance), correct=chance)
             for a, b in (("fgsm", 1 / 255), ("pgd-linf", 1 / 255))]
    entries = build_entries(cells + matrix(), "test-set", PROVENANCE)
    assert [(e["model"], e["rank"]) for e in entries] == [("resnet10t", 1), ("constant", None)]
    constant = entries[1]
    assert "did not learn: clean balanced accuracy 50.0%" in constant["unreliable_reason"]
    assert constant["robust_balanced_accuracy"]["value"] == 0.5
    assert constant["robust_balanced_accuracy"]["value"] > entries[0]["robust_balanced_accuracy"]["value"]


def test_randomness_with_eot_is_a_mark_without_it_a_demotion() -> None:
    noisy = {**PROBE, "prediction_max_abs_diff": 0.2}
    plain = _entry(matrix(probe=noisy))
    assert _tripped(plain)["random-inference"].startswith(
        "randomness not averaged: two passes over the same images differ by up to 0.2 in P(positive) and the attacks "
        "did not use EOT")
    assert plain["unreliable"] and plain["rank"] is None
    eot = _entry(matrix(probe=noisy, eot_samples=8))
    assert not eot["unreliable"] and eot["rank"] == 1
    assert eot["marks"] == ["random defense attacked with EOT (8 draws per gradient): two passes differ by up to 0.2 "
                            "in P(positive)"]


def test_blocked_gradients_and_failed_attacks_keep_the_entry_with_the_reason() -> None:
    failed = [{"model": "resnet10t", "defense": "none", "cell": "fgsm@8/255", "attack": "fgsm", "threat": "linf",
               "error": "attack fgsm: defense none (x.Y) blocks gradients: ..."}]
    (entry,) = build_entries(matrix(probe={**PROBE, "grad_blocked": True}), "test-set", PROVENANCE, failed)
    assert _tripped(entry)["gradients-blocked"].startswith("gradients blocked: the deployed model's output has no "
                                                           "grad_fn")
    assert entry["rank"] is None and entry["failed_cells"] == failed
    other = [{**failed[0], "error": "BenchmarkError: something else"}]
    (entry,) = build_entries(matrix(), "test-set", PROVENANCE, other)
    assert _tripped(entry) == {"attack-failed": "attack failed: fgsm@8/255: BenchmarkError: something else"}
    assert board_entries([entry], "linf")[0]["unreliable"] and not board_entries([entry], "semantic")[0]["unreliable"]


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
    assert _tripped(entry)["zero-gradients"].startswith("zero gradients: zero input gradients on 100% of 10 "
                                                        "validation images")


class _NoGrad(torch.nn.Module):
    """A 'defense' that runs its model under no_grad: no autograd graph reaches the input."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.linear(x.flatten(1))


def test_the_probe_sees_blocked_gradients() -> None:
    images = np.random.default_rng(0).random((10, 1, 4, 4)).astype(np.float32)
    probe = gradient_probe(_NoGrad(), images, np.arange(10) % 2, torch.device("cpu"))
    assert probe["grad_blocked"] is True and probe["grad_zero_fraction"] == 1.0
