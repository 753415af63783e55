"""Gradient-masking checks on every (model, defense) entry, in the spirit of AutoAttack's flags.

A defense that trips one is marked `unreliable` with the reason, so that a masked gradient never reads as robustness:
(a) zero or vanishing input gradients of the loss at the deployed model (the train stage's probe);
(b) a black-box attack beating the white-box ones at the same threat and budget, beyond noise;
(c) robust accuracy that does not fall, beyond noise, as the budget of the same attack grows (or rises);
(d) randomness in inference: two passes over the same batch give different predictions.
"Beyond noise" is a one-sided exact McNemar test on per-image robust flags of the same images, or, without flags,
disjoint 95% Wilson intervals.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from benchmark.leaderboard_entry import cell_flags, cell_name
from benchmark.metrics import mcnemar_test, worst_case

__all__ = [
    "ALPHA",
    "MIN_ROBUST_TO_FALL",
    "RANDOM_DIFF",
    "VANISHING_NORM",
    "ZERO_FRACTION",
    "evaluate",
    "significantly_lower",
    "verdict",
]

ALPHA = 0.05
ZERO_FRACTION = 0.1  # more than this share of probe images with an exactly zero input gradient
VANISHING_NORM = 1e-8  # median input-gradient L2 norm below this: gradients vanish
RANDOM_DIFF = 1e-4  # two passes over the same images differing by more than this in P(positive)
MIN_ROBUST_TO_FALL = 5  # with fewer robust images, even losing all of them is not significant at 5% (0.5^5 > 0.05)


def _pct(r: dict) -> str:
    return "n/a" if r.get("value") is None else f"{100 * r['value']:.1f}% ({r['successes']}/{r['n']})"


def significantly_lower(low: np.ndarray | None, high: np.ndarray | None, low_rate: dict, high_rate: dict,
                        alpha: float = ALPHA) -> tuple[bool, str]:
    """Whether `low` is below `high` beyond noise: paired McNemar when flags pair up, else disjoint intervals."""
    if low is not None and high is not None and len(low) == len(high):
        test = mcnemar_test(high, low, alternative="greater")
        return test["p_value"] < alpha, f"McNemar p={test['p_value']:.2g}"
    lo_hi, hi_lo = low_rate.get("hi"), high_rate.get("lo")
    if lo_hi is None or hi_lo is None:
        return False, "no interval"
    return lo_hi < hi_lo, "Wilson intervals " + ("disjoint" if lo_hi < hi_lo else "overlap")


def _result(check: str, threats: list[str] | str, reasons: list[str], evaluated: bool = True,
            detail: Any = None) -> dict:
    return {"check": check, "evaluated": evaluated, "tripped": bool(reasons), "threats": threats,
            "reason": "; ".join(reasons) or None, "detail": detail}


def _gradients(probe: dict | None) -> dict:
    if not probe or not probe.get("n"):
        return _result("zero-gradients", "all", [], evaluated=False,
                       detail="no masking probe in the train artifact (trained before the probe existed)")
    reasons = []
    zero, median = probe.get("grad_zero_fraction", 0.0), probe.get("grad_norm_median")
    if zero > ZERO_FRACTION:
        reasons.append(f"zero input gradients on {100 * zero:.0f}% of {probe['n']} validation images")
    if median is not None and median < VANISHING_NORM:
        reasons.append(f"vanishing input gradients (median L2 norm {median:.2g} < {VANISHING_NORM:g})")
    if probe.get("grad_nonfinite"):
        reasons.append(f"non-finite input gradients on {probe['grad_nonfinite']} validation images")
    return _result("zero-gradients", "all", reasons, detail={k: probe.get(k) for k in
                                                              ("n", "grad_zero_fraction", "grad_norm_median")})


def _randomness(probe: dict | None, entry: dict) -> dict:
    if not probe or probe.get("prediction_max_abs_diff") is None:
        return _result("random-inference", "all", [], evaluated=False, detail="no masking probe")
    diff = float(probe["prediction_max_abs_diff"])
    reasons = []
    if diff > RANDOM_DIFF:
        eot = any(a.get("adaptive") for a in entry["attacks"])
        reasons.append(f"randomised inference: two passes over the same images differ by up to {diff:.2g} in "
                       f"P(positive) (attacks {'used' if eot else 'did not use'} EOT)")
    return _result("random-inference", "all", reasons, detail={"prediction_max_abs_diff": diff})


def _black_box(entry: dict, flags: dict[str, np.ndarray], alpha: float) -> dict:
    reasons, threats, compared = [], set(), 0
    pixel = [a for a in entry["attacks"] if a["threat"] != "semantic"]
    for bb in (a for a in pixel if a["access"] == "black-box"):
        white = [a for a in pixel if a["access"] == "white-box" and a["threat"] == bb["threat"]
                 and math.isclose(float(a["budget"]), float(bb["budget"]), rel_tol=1e-9)]
        if not white:
            continue
        compared += 1
        names = [cell_name(a) for a in white]
        best = min(white, key=lambda a: a["attack_outcome"]["robust_accuracy"]["value"] or 0.0)
        white_flags = worst_case({n: flags[n] for n in names}) if all(n in flags for n in names) else None
        white_rate = best["attack_outcome"]["robust_accuracy"]
        if white_flags is not None:
            white_rate = {"value": float(white_flags.mean()), "successes": int(white_flags.sum()),
                          "n": len(white_flags), "lo": None, "hi": None}
        bb_rate = bb["attack_outcome"]["robust_accuracy"]
        lower, how = significantly_lower(flags.get(cell_name(bb)), white_flags, bb_rate,
                                         best["attack_outcome"]["robust_accuracy"], alpha)
        if lower:
            threats.add(bb["threat"])
            reasons.append(f"black-box {cell_name(bb)} leaves {_pct(bb_rate)} robust, below the white-box "
                           f"attacks at that budget ({', '.join(names)}: {_pct(white_rate)}; {how})")
    return _result("black-box-beats-white-box", sorted(threats), reasons, evaluated=compared > 0,
                   detail={"comparisons": compared})


def _budgets(entry: dict, flags: dict[str, np.ndarray], alpha: float) -> dict:
    reasons, threats, compared = [], set(), 0
    by_attack: dict[str, list[dict]] = {}
    for a in entry["attacks"]:
        if a["threat"] != "semantic":
            by_attack.setdefault(a["attack"], []).append(a)
    for name, cells in by_attack.items():
        cells = sorted(cells, key=lambda a: float(a["budget"]))
        if len(cells) < 2:
            continue
        compared += 1
        rates = [a["attack_outcome"]["robust_accuracy"] for a in cells]
        cflags = [flags.get(cell_name(a)) for a in cells]
        for i in range(len(cells) - 1):  # a larger budget must not leave more images robust
            higher, how = significantly_lower(cflags[i], cflags[i + 1], rates[i], rates[i + 1], alpha)
            if higher:
                threats.add(cells[i]["threat"])
                reasons.append(f"{name}: robust accuracy rises from {_pct(rates[i])} at {cell_name(cells[i])} to "
                               f"{_pct(rates[i + 1])} at {cell_name(cells[i + 1])} ({how})")
        if rates[0]["successes"] < MIN_ROBUST_TO_FALL:
            continue  # nothing left that could fall significantly
        fell, how = significantly_lower(cflags[-1], cflags[0], rates[-1], rates[0], alpha)
        if not fell:
            threats.add(cells[0]["threat"])
            reasons.append(f"{name}: robust accuracy does not fall as the budget grows ({_pct(rates[0])} at "
                           f"{cell_name(cells[0])}, {_pct(rates[-1])} at {cell_name(cells[-1])}; {how})")
    return _result("budget-does-not-help", sorted(threats), reasons, evaluated=compared > 0,
                   detail={"attacks_with_several_budgets": compared})


def evaluate(entry: dict, alpha: float = ALPHA) -> list[dict]:
    """Run every check on one (model, defense) entry: a list of {check, evaluated, tripped, threats, reason}."""
    flags = cell_flags(entry)
    probe = entry.get("masking_probe")
    return [_gradients(probe), _black_box(entry, flags, alpha), _budgets(entry, flags, alpha),
            _randomness(probe, entry)]


def verdict(checks: list[dict], board: str = "overall") -> tuple[bool, str | None]:
    """(unreliable, reason) for a board: tripped checks that apply to every threat or to this board's threat."""
    reasons = [c["reason"] for c in checks if c["tripped"]
               and (board == "overall" or c["threats"] == "all" or board in c["threats"])]
    return bool(reasons), "; ".join(reasons) or None
