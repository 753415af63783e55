"""The CI gate: compare every score of a rerun with the committed leaderboard entries, beyond statistical noise.

A score regresses when its drop is statistically real, not beyond a fixed epsilon:
- where both sides have per-image flags of the same images (ids hashed in the entries), an exact one-sided McNemar
  test on the paired flags, with Holm's correction over all paired scores (family-wise error alpha, 5% default);
- otherwise (AUC, GAN fooled rates, other images) the 95% intervals: a regression when they are disjoint; a GAN cell
  trained over several seeds compares its band (the union of its per-seed intervals), so a rate regresses only
  beyond the spread across GAN trainings.
A baseline entry or score missing from the rerun fails too (a renamed metric or attack reads as missing); new ones
and improvements are reported and pass.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark.leaderboard.entry import (
    BOARDS,
    cell_flags,
    decode_flags,
    fmt_auc,
    fmt_pct,
    worst_flags,
)
from benchmark.metrics import mcnemar_test

__all__ = ["Comparison", "compare", "holm"]

ALPHA = 0.05


@dataclass
class Comparison:
    """One score of one entry: baseline and rerun values, the test used, and its status."""

    entry: str
    score: str
    baseline: str
    now: str
    test: str
    p_value: float | None
    status: str  # same | noise | improved | regressed | missing | new

    @property
    def failed(self) -> bool:
        """A regression or a baseline score the rerun lacks."""
        return self.status in ("regressed", "missing")

    def line(self) -> str:
        """One line for the log: what regressed, from what to what, and why it is not noise."""
        return (f"{self.status}: {self.entry} {self.score}: {self.baseline} -> {self.now}"
                + (f" ({self.test})" if self.test else ""))


@dataclass
class _Score:
    kind: str  # rate | auc
    value: dict
    flags: np.ndarray | None
    higher_is_better: bool = True
    band: tuple[float, float] | None = None  # GAN cells over several seeds: the union of the per-seed intervals

    def text(self) -> str:
        return fmt_auc(self.value) if self.kind == "auc" else fmt_pct(self.value)


def _get(d: object, *keys: str) -> dict | None:
    """d[k1][k2]... when every level is there and the end is a metric dict, else None (a renamed key: missing)."""
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d if isinstance(d, dict) and "value" in d else None


def _scores(entry: dict) -> dict[str, _Score]:
    """Every gated score of an overall entry, with per-image flags where the entry stores them."""
    per_image = entry.get("per_image") or {}
    flags = cell_flags(entry)
    correct = decode_flags(per_image["clean_correct"]) if per_image.get("clean_correct") else None
    found = {"clean accuracy": _Score("rate", _get(entry, "clean", "accuracy"), correct),
             "clean AUC": _Score("auc", _get(entry, "clean", "auc"), None)}
    for a in entry.get("attacks", []):
        cell = a.get("cell") or f"{a.get('attack')}@{a.get('budget')}"
        found[f"robust accuracy {cell}"] = _Score("rate", _get(a, "attack_outcome", "robust_accuracy"),
                                                  flags.get(cell))
    for board in BOARDS:
        worst = _get(entry, "worst_case_robust_accuracy") if board == "overall" else \
            _get(entry, "worst_case_by_threat", board)
        if worst is not None or board == "overall":
            found[f"worst-case robust accuracy ({board})"] = _Score("rate", worst, worst_flags(entry, board))
    for g in entry.get("gan", []):
        for key, name in (("pos_to_neg", "positives made negative"), ("neg_to_pos", "negatives made positive"),
                          ("overall", "fooled overall")):
            spread = ((g.get("seeds") or {}).get("threshold") or {}).get(key) or {}
            band = (spread["band_lo"], spread["band_hi"]) if spread.get("band_lo") is not None else None
            found[f"{g.get('attack')} {name}"] = _Score("rate", _get(g, key), None, higher_is_better=False, band=band)
    detection = entry.get("detection") or {}
    if detection:
        found["fakes detected"] = _Score("rate", _get(detection, "detection_rate"), None)
        found["false alarms on real images"] = _Score("rate", _get(detection, "false_alarm_rate"), None,
                                                      higher_is_better=False)
    return {name: score for name, score in found.items() if score.value is not None}


def _aligned(base: dict, new: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """Positions that pair the two entries' images by hashed id, or None when they were not the same images."""
    ids_a = (base.get("per_image") or {}).get("ids_sha256")
    ids_b = (new.get("per_image") or {}).get("ids_sha256")
    if not ids_a or not ids_b or len(ids_a) != len(ids_b) or set(ids_a) != set(ids_b):
        return None
    where = {i: k for k, i in enumerate(ids_b)}
    return np.arange(len(ids_a)), np.array([where[i] for i in ids_a])


def _interval_status(base: _Score, new: _Score) -> str:
    b, n = base.value, new.value
    if b.get("value") == n.get("value"):
        return "same"
    b_lo, b_hi = base.band or (b.get("lo"), b.get("hi"))
    n_lo, n_hi = new.band or (n.get("lo"), n.get("hi"))
    if None in (b_lo, b_hi, n_lo, n_hi):
        return "noise"
    worse = n_hi < b_lo if base.higher_is_better else n_lo > b_hi
    better = n_lo > b_hi if base.higher_is_better else n_hi < b_lo
    return "regressed" if worse else "improved" if better else "noise"


def holm(p_values: list[float], alpha: float = ALPHA) -> list[bool]:
    """Holm's step-down procedure: which hypotheses are rejected at family-wise error alpha."""
    order = np.argsort(p_values, kind="stable")
    rejected = [False] * len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] >= alpha / (len(p_values) - rank):
            break
        rejected[i] = True
    return rejected


def compare(baseline: list[dict], current: list[dict], alpha: float = ALPHA) -> list[Comparison]:
    """Every score of every baseline entry against the rerun's, in baseline order; new entries and scores last."""
    def key(e: dict) -> str:
        return f"{e['model']}+{e['defense']}"

    now_by = {key(e): e for e in current}
    out: list[Comparison] = []
    paired: list[tuple[Comparison, float, float]] = []  # (comparison, p worse, p better)
    for base in baseline:
        name = key(base)
        if name not in now_by:
            out.append(Comparison(name, "entry", "present", "missing", "not in the rerun", None, "missing"))
            continue
        new = now_by[name]
        pairs = _aligned(base, new)
        b_scores, n_scores = _scores(base), _scores(new)
        for score, b in b_scores.items():
            n = n_scores.get(score)
            if n is None:
                out.append(Comparison(name, score, b.text(), "missing", "not in the rerun", None, "missing"))
                continue
            if pairs is not None and b.flags is not None and n.flags is not None:
                fa, fb = b.flags[pairs[0]], n.flags[pairs[1]]
                worse = mcnemar_test(fa, fb, "greater")
                better = mcnemar_test(fb, fa, "greater")
                c = Comparison(name, score, b.text(), n.text(), f"McNemar b={worse['b']} c={worse['c']}",
                               worse["p_value"], "same" if np.array_equal(fa, fb) else "noise")
                out.append(c)
                if c.status != "same":
                    paired.append((c, worse["p_value"], better["p_value"]))
            else:
                status = _interval_status(b, n)
                test = "bootstrap intervals" if b.kind == "auc" else \
                    "Wilson intervals over GAN seeds" if b.band or n.band else "Wilson intervals"
                out.append(Comparison(name, score, b.text(), n.text(), test, None, status))
        out += [Comparison(name, s, "-", n.text(), "", None, "new") for s, n in n_scores.items() if s not in b_scores]
    base_names = {key(e) for e in baseline}
    out += [Comparison(key(e), "entry", "-", "present", "", None, "new") for e in current
            if key(e) not in base_names]
    for rejected, (c, p_worse, _) in zip(holm([p for _, p, _ in paired], alpha), paired):
        if rejected:
            c.status, c.test = "regressed", f"{c.test}, p={p_worse:.2g} (Holm, alpha {alpha:g})"
    for rejected, (c, _, p_better) in zip(holm([p for _, _, p in paired], alpha), paired):
        if rejected and c.status == "noise":
            c.status, c.p_value, c.test = "improved", p_better, f"{c.test}, p={p_better:.2g} (Holm, alpha {alpha:g})"
    for c, _, _ in paired:
        if c.status == "noise":
            c.test = f"{c.test}, p={c.p_value:.2g}"
    return out
