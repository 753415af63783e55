"""Checks on every (model, defense) entry that decide whether its verdict can be trusted (shared/EVALUATION.md).

Each check has a name, a level and an effect, and is explained in docs/checks.md (one section per check):
- model-level checks concern every board of the entry: the model did not learn (clean AUC or balanced accuracy
  interval reaches chance); zero or vanishing input gradients; gradients blocked (no autograd graph back to the
  input); randomness in inference;
- attack-level checks concern the boards of their threats: a black-box attack beating the white-box ones beyond
  noise; robust accuracy that rises beyond noise as the budget grows; the large-budget sanity attack (PGD-L-inf at
  [attack] sanity_budget) not bringing the entry near chance; an attack that failed on the entry.
A tripped check demotes the entry (listed after the ranked ones, with the reason) unless its effect is "mark": a
random defense attacked with EOT is ranked, with the mark. "Beyond noise" is a one-sided exact McNemar test on
per-image robust flags of the same images, or, without flags, disjoint 95% Wilson intervals.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from benchmark.leaderboard.entry import cell_flags, cell_name
from benchmark.metrics import combined_rate, mcnemar_test, worst_case

__all__ = [
    "ALPHA",
    "CHANCE",
    "CHECKS_DOC",
    "PIXEL_THREATS",
    "RANDOM_DIFF",
    "VANISHING_NORM",
    "ZERO_FRACTION",
    "clean_balanced_accuracy",
    "evaluate",
    "marks",
    "significantly_lower",
    "verdict",
]

ALPHA = 0.05
CHANCE = 0.5  # AUC and balanced accuracy of a model that did not learn
ZERO_FRACTION = 0.1  # more than this share of probe images with an exactly zero input gradient
VANISHING_NORM = 1e-8  # median input-gradient L2 norm below this: gradients vanish
RANDOM_DIFF = 1e-4  # two passes over the same images differing by more than this in P(positive)
PIXEL_THREATS = ["linf", "l2"]
CHECKS_DOC = "docs/checks.md"


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


def _result(check: str, level: str, threats: list[str] | str, reasons: list[str], evaluated: bool = True,
            detail: Any = None, effect: str = "demote") -> dict:
    return {"check": check, "level": level, "effect": effect, "evaluated": evaluated, "tripped": bool(reasons),
            "threats": threats, "reason": "; ".join(reasons) or None, "detail": detail,
            "doc": f"{CHECKS_DOC}#{check}"}


def clean_balanced_accuracy(clean: dict) -> dict:
    """The clean balanced accuracy of an entry's clean metrics (recomputed from sensitivity and specificity when an
    older entry lacks it)."""
    if clean.get("balanced_accuracy"):
        return clean["balanced_accuracy"]
    return combined_rate(clean["sensitivity"], clean["specificity"], 0.5)


def _did_not_learn(entry: dict) -> dict:
    auc, bal = entry["clean"].get("auc") or {}, clean_balanced_accuracy(entry["clean"])
    reasons = []
    if auc.get("lo") is not None and auc["lo"] <= CHANCE:
        reasons.append(f"did not learn: clean AUC {auc['value']:.3f} [{auc['lo']:.3f}, {auc['hi']:.3f}] reaches "
                       "chance (0.5)")
    if bal.get("lo") is not None and bal["lo"] <= CHANCE:
        reasons.append(f"did not learn: clean balanced accuracy {100 * bal['value']:.1f}% "
                       f"[{100 * bal['lo']:.1f}, {100 * bal['hi']:.1f}] reaches chance (50%)")
    evaluated = auc.get("lo") is not None or bal.get("lo") is not None
    return _result("did-not-learn", "model", "all", reasons, evaluated,
                   detail={"auc": {k: auc.get(k) for k in ("value", "lo", "hi")},
                           "balanced_accuracy": {k: bal.get(k) for k in ("value", "lo", "hi")}})


def _gradients(probe: dict | None) -> dict:
    if not probe or not probe.get("n"):
        return _result("zero-gradients", "model", "all", [], evaluated=False,
                       detail="no masking probe in the train artifact (trained before the probe existed)")
    if probe.get("grad_blocked"):  # reported by its own check
        return _result("zero-gradients", "model", "all", [], evaluated=False, detail="gradients blocked")
    reasons = []
    zero, median = probe.get("grad_zero_fraction", 0.0), probe.get("grad_norm_median")
    if zero > ZERO_FRACTION:
        reasons.append(f"zero gradients: zero input gradients on {100 * zero:.0f}% of {probe['n']} validation "
                       "images")
    if median is not None and median < VANISHING_NORM:
        reasons.append(f"zero gradients: vanishing input gradients (median L2 norm {median:.2g} < "
                       f"{VANISHING_NORM:g})")
    if probe.get("grad_nonfinite"):
        reasons.append(f"non-finite input gradients on {probe['grad_nonfinite']} validation images")
    return _result("zero-gradients", "model", "all", reasons, detail={k: probe.get(k) for k in
                                                                       ("n", "grad_zero_fraction", "grad_norm_median")})


def _blocked(entry: dict, probe: dict | None) -> dict:
    reasons = []
    if probe and probe.get("grad_blocked"):
        reasons.append("gradients blocked: the deployed model's output has no grad_fn (no autograd graph back to "
                       "the input); deploy the transform behind "
                       "benchmark.attacking.adaptive.TransformedModel (BPDA/EOT)")
    broken = [f["cell"] for f in entry.get("failed_cells", []) if "blocks gradients" in (f.get("error") or "")]
    if broken and not reasons:
        reasons.append(f"gradients blocked: {', '.join(broken)} could not take a gradient through the defense")
    evaluated = bool(probe and probe.get("n")) or bool(broken)
    return _result("gradients-blocked", "model", "all", reasons, evaluated, detail={"failed_cells": broken})


def _randomness(probe: dict | None, entry: dict) -> dict:
    if not probe or probe.get("prediction_max_abs_diff") is None:
        return _result("random-inference", "model", "all", [], evaluated=False, detail="no masking probe")
    diff = float(probe["prediction_max_abs_diff"])
    eot = int(entry.get("eot_samples") or 1)
    detail = {"prediction_max_abs_diff": diff, "eot_samples": eot}
    if diff <= RANDOM_DIFF:
        return _result("random-inference", "model", "all", [], detail=detail)
    if eot > 1:  # an honest random defense: attacked through the expectation over its draws
        return _result("random-inference", "model", "all",
                       [f"random defense attacked with EOT ({eot} draws per gradient): two passes differ by up to "
                        f"{diff:.2g} in P(positive)"], detail=detail, effect="mark")
    return _result("random-inference", "model", "all",
                   [f"randomness not averaged: two passes over the same images differ by up to {diff:.2g} in "
                    "P(positive) and the attacks did not use EOT; deploy the transform behind "
                    "TransformedModel(random=True, samples=N)"], detail=detail)


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
    return _result("black-box-beats-white-box", "attack", sorted(threats), reasons, evaluated=compared > 0,
                   detail={"comparisons": compared})


def _budgets(entry: dict, flags: dict[str, np.ndarray], alpha: float) -> dict:
    """Robust accuracy that rises beyond noise as the budget of the same attack grows."""
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
    return _result("budget-raises-robustness", "attack", sorted(threats), reasons, evaluated=compared > 0,
                   detail={"attacks_with_several_budgets": compared})


def _sanity(entry: dict) -> dict:
    cells = entry.get("sanity") or []
    if not cells:
        return _result("large-budget-sanity", "attack", PIXEL_THREATS, [], evaluated=False,
                       detail="no sanity cell ([attack] sanity_budget = 0, or an entry made before the check)")
    reasons, detail = [], []
    for a in cells:
        bal = a.get("robust_balanced_accuracy") or {}
        detail.append({"cell": a["cell"], "robust_balanced_accuracy": {k: bal.get(k) for k in ("value", "lo", "hi")}})
        if bal.get("lo") is not None and bal["lo"] > CHANCE:
            reasons.append(f"attack not reaching the model: {a['cell']} (white-box, a budget no model resists) "
                           f"leaves robust balanced accuracy at {100 * bal['value']:.1f}% "
                           f"[{100 * bal['lo']:.1f}, {100 * bal['hi']:.1f}], above chance")
    return _result("large-budget-sanity", "attack", PIXEL_THREATS, reasons, detail=detail)


def _failed(entry: dict) -> dict:
    failed = [f for f in entry.get("failed_cells", []) if "blocks gradients" not in (f.get("error") or "")]
    reasons = [f"attack failed: {f['cell']}: {f.get('error') or 'no error recorded'}" for f in failed]
    threats = sorted({f.get("threat") or "linf" for f in failed})
    return _result("attack-failed", "attack", threats, reasons, detail=[f["cell"] for f in failed])


def evaluate(entry: dict, alpha: float = ALPHA) -> list[dict]:
    """Run every check on one (model, defense) entry: a list of {check, level, effect, evaluated, tripped,
    threats, reason, detail, doc}."""
    flags = cell_flags(entry)
    probe = entry.get("masking_probe")
    return [_did_not_learn(entry), _gradients(probe), _blocked(entry, probe), _randomness(probe, entry),
            _black_box(entry, flags, alpha), _budgets(entry, flags, alpha), _sanity(entry), _failed(entry)]


def _concerns(check: dict, board: str) -> bool:
    return board == "overall" or check["threats"] == "all" or board in check["threats"]


def verdict(checks: list[dict], board: str = "overall") -> tuple[bool, str | None]:
    """(unreliable, reason) for a board: tripped demoting checks of the model, or of this board's threat."""
    reasons = [c["reason"] for c in checks if c["tripped"] and c.get("effect", "demote") == "demote"
               and _concerns(c, board)]
    return bool(reasons), "; ".join(reasons) or None


def marks(checks: list[dict], board: str = "overall") -> list[str]:
    """The marks (tripped checks that do not demote) that concern a board, e.g. 'EOT'."""
    return [c["reason"] for c in checks if c["tripped"] and c.get("effect") == "mark" and _concerns(c, board)]
