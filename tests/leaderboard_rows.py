"""Hand-made score rows (as stages/score.py writes them) for leaderboard, masking-check and gate tests."""
from __future__ import annotations

import numpy as np

from benchmark.metrics import attack_outcome, classification_metrics

N = 200
LABELS = np.arange(N) % 2
IDS = np.array([f"img{i:04d}" for i in range(N)])
PROBE = {"n": 64, "grad_zero_fraction": 0.0, "grad_norm_median": 0.05, "grad_norm_min": 0.01, "grad_nonfinite": 0,
         "prediction_max_abs_diff": 0.0}


def clean_correct(n_wrong: int = 20) -> np.ndarray:
    """The first n_wrong images misclassified, the rest correct."""
    correct = np.ones(N, bool)
    correct[:n_wrong] = False
    return correct


def robust_flags(n_robust: int, correct: np.ndarray | None = None) -> np.ndarray:
    """The last n_robust correctly classified images robust (so smaller sets are subsets of larger ones)."""
    correct = clean_correct() if correct is None else correct
    flags = np.zeros(N, bool)
    flags[np.flatnonzero(correct)[::-1][:n_robust]] = True
    return flags


def make_row(model: str, defense: str, attack: str, budget: float, robust: np.ndarray, *,
             correct: np.ndarray | None = None, threat: str = "linf", access: str = "white-box",
             adaptive: bool = False, probe: dict | None = PROBE, visibility: dict | None = None,
             ids: np.ndarray = IDS, role: str = "board",
             eot_samples: int = 1) -> tuple[dict, dict]:
    """(row, flags) of one cell whose robust images are exactly `robust`."""
    correct = clean_correct() if correct is None else correct
    robust = robust & correct
    clean_pred = np.where(correct, LABELS, 1 - LABELS)
    adv_pred = np.where(robust, LABELS, 1 - LABELS)
    scores = np.where(clean_pred == 1, 0.8, 0.2) + np.linspace(-0.1, 0.1, N)
    outcome = attack_outcome(LABELS, clean_pred, adv_pred)
    row = {"model": model, "defense": defense, "attack": attack, "budget": budget, "threat": threat,
           "access": access, "adaptive": adaptive, "clean": classification_metrics(LABELS, scores, 0.5, n_boot=200),
           "attack_outcome": outcome.summary,
           "perturbation": {"linf": {"mean": budget}, "l2": {"mean": budget * 10}, "ssim": {"mean": 0.99},
                            "psnr": {"mean": 48.0}},
           "attack_seconds": 2.0, "images_per_s": 100.0, "train_seconds": 30.0, "val_auc": 0.9, "threshold": 0.5,
           "n_test": N, "defense_info": {"differentiable": not adaptive}, "masking_probe": probe, "role": role,
           "eot_samples": eot_samples,
           "attack_outcome_argmax": outcome.summary, "operating_point": {"threshold": 0.5, "logit_shift": 0.0}}
    if visibility is not None:
        row["visibility"] = visibility
    flags = {"ids": ids, "labels": LABELS, "clean_correct": correct, "robust": robust,
             "fooled": correct & ~robust}
    return row, flags


VISIBILITY = {"perturbation": {"ssim": {"mean": 0.97}, "psnr": {"mean": 38.5}},
              "area_changed": {"level": 0.02, "mean_fraction_of_image": 0.01, "mean_fraction_of_breast": 0.02},
              "detector": {"auc": {"value": 0.71, "lo": 0.6, "hi": 0.8}, "accuracy": {"value": 0.66, "lo": 0.56,
                                                                                     "hi": 0.75, "successes": 66,
                                                                                     "n": 100}},
              "mode": "white-box", "gan_target": "m+d", "seconds": 12.0}


def matrix(model: str = "resnet10t", defense: str = "none", strength: int = 0, **kw: object) -> list[tuple[dict, dict]]:
    """A plausible (model, defense) group: FGSM and PGD at two budgets, Square, and a GAN cell."""
    s = strength
    cells = [make_row(model, defense, "fgsm", 1 / 255, robust_flags(120 + s), **kw),
             make_row(model, defense, "fgsm", 2 / 255, robust_flags(80 + s), **kw),
             make_row(model, defense, "pgd-linf", 1 / 255, robust_flags(110 + s), **kw),
             make_row(model, defense, "pgd-linf", 2 / 255, robust_flags(60 + s), **kw),
             make_row(model, defense, "square", 2 / 255, robust_flags(90 + s), access="black-box", **kw),
             make_row(model, defense, "gan", 0.0, robust_flags(50 + s), threat="semantic", visibility=VISIBILITY,
                      **kw),
             make_row(model, defense, "pgd-linf", 32 / 255, robust_flags(0), role="sanity", **kw)]
    return cells


PROVENANCE = {"config_digest": "abc123def456", "seed": 0, "device": "cpu", "date": "2026-01-01",
              "git_commit": "deadbeef", "versions": {"python": "3.11"}, "run_id": "test-run", "image_size": 64}
