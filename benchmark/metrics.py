"""The numbers the benchmark reports, each rate with a 95% interval: pure functions on numpy arrays.

Conventions: label 1 = positive (cancer), 0 = negative; scores are P(positive); a score is predicted positive when
score >= threshold. Dicts returned here keep nan/inf as floats; pass them through `to_jsonable` before writing JSON.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

import numpy as np
from scipy import stats

__all__ = [
    "AttackOutcome",
    "Rate",
    "as_numpy",
    "attack_outcome",
    "balanced_accuracy",
    "bootstrap_auc",
    "choose_threshold",
    "classification_metrics",
    "flag_threshold",
    "combined_rate",
    "mcnemar_test",
    "paired_bootstrap_auc",
    "predict_labels",
    "rate",
    "to_jsonable",
    "wilson_interval",
    "worst_case",
    "worst_case_rate",
]


def as_numpy(x: Any) -> np.ndarray:
    """A numpy array from a numpy array, list or torch tensor (on any device, with or without grad)."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (nan, nan) when n == 0."""
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return (math.nan, math.nan)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / n + z2n / (4 * n))
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return (lo, hi)


@dataclass(frozen=True)
class Rate:
    """A proportion successes/n with its Wilson interval; value is nan when n == 0."""

    value: float
    lo: float
    hi: float
    successes: int
    n: int

    def to_dict(self) -> dict[str, float | int]:
        """{value, lo, hi, successes, n} as plain Python numbers (nan kept; see `to_jsonable`)."""
        return {"value": self.value, "lo": self.lo, "hi": self.hi, "successes": self.successes, "n": self.n}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Rate:
        """The inverse of `to_dict`, also after `to_jsonable` (None read back as nan)."""
        value, lo, hi = (math.nan if d[k] is None else float(d[k]) for k in ("value", "lo", "hi"))
        return cls(value, lo, hi, int(d["successes"]), int(d["n"]))


def rate(successes: int, n: int, confidence: float = 0.95) -> Rate:
    """successes/n with a Wilson interval."""
    successes, n = int(successes), int(n)
    lo, hi = wilson_interval(successes, n, confidence)
    return Rate(successes / n if n else math.nan, lo, hi, successes, n)


def _binary(labels: Any, name: str = "labels") -> np.ndarray:
    y = as_numpy(labels)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {y.shape}")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError(f"{name} must be 0/1 (or bool), got values {np.unique(y)[:5].tolist()}")
    return y.astype(bool)


def _scores(scores: Any, n: int) -> np.ndarray:
    s = as_numpy(scores).astype(np.float64)
    if s.ndim != 1 or len(s) != n:
        raise ValueError(f"scores must be a 1-D array of P(positive) with {n} entries, got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores contain nan or inf")
    return s


def _same_length(*arrays: np.ndarray) -> None:
    if len({len(a) for a in arrays}) > 1:
        raise ValueError(f"arrays differ in length: {[len(a) for a in arrays]}")


def _auc_from_counts(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC from per-score-bin class counts (bins in ascending score order), rowwise; ties count 1/2."""
    n_pos, n_neg = pos.sum(axis=-1), neg.sum(axis=-1)
    pos_above = n_pos[..., None] - np.cumsum(pos, axis=-1)  # positives with a strictly higher score than the bin
    return (neg * (pos_above + 0.5 * pos)).sum(axis=-1) / (n_pos * n_neg)


def _resampled_counts(bins: np.ndarray, n_bins: int, n_rows: int, rng: np.random.Generator) -> np.ndarray:
    draws = bins[rng.integers(0, len(bins), size=(n_rows, len(bins)))]
    offsets = (np.arange(n_rows) * n_bins)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=n_rows * n_bins).reshape(n_rows, n_bins)


def bootstrap_auc(
    labels: Any, scores: Any, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95
) -> dict[str, Any]:
    """ROC AUC with a stratified percentile-bootstrap interval: {value, lo, hi, n_pos, n_neg, n_boot, reason}."""
    y = _binary(labels)
    s = _scores(scores, len(y))
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    out: dict[str, Any] = {"value": math.nan, "lo": math.nan, "hi": math.nan,
                           "n_pos": n_pos, "n_neg": n_neg, "n_boot": int(n_boot), "reason": None}
    if n_pos == 0 or n_neg == 0:
        out["reason"] = f"AUC undefined: only one class present (n_pos={n_pos}, n_neg={n_neg})"
        return out
    uniq, bins = np.unique(s, return_inverse=True)
    k = len(uniq)
    pos_bins, neg_bins = bins[y], bins[~y]
    out["value"] = float(_auc_from_counts(np.bincount(pos_bins, minlength=k), np.bincount(neg_bins, minlength=k)))
    if n_boot <= 0:
        return out
    rng = np.random.default_rng(seed)
    chunk = max(1, 4_000_000 // (k + len(y)))  # bounds memory at a few tens of MB for any n
    aucs = []
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        aucs.append(_auc_from_counts(_resampled_counts(pos_bins, k, rows, rng),
                                     _resampled_counts(neg_bins, k, rows, rng)))
    alpha = 1 - confidence
    lo, hi = np.quantile(np.concatenate(aucs), [alpha / 2, 1 - alpha / 2])
    out["lo"], out["hi"] = float(lo), float(hi)
    return out


def _pair_scores(scores: Any, name: str) -> np.ndarray:
    s = as_numpy(scores).astype(np.float64)
    if s.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of scores, got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError(f"{name} contain nan or inf")
    return s


def paired_bootstrap_auc(
    scores_a: Any, scores_b: Any, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95
) -> dict[str, Any]:
    """ROC AUC of class 1 (scores_b) against class 0 (scores_a) for data that come in pairs (scores_a[i] and
    scores_b[i] belong together, e.g. a real image and its own fake), with a percentile-bootstrap interval that
    resamples PAIRS: {value, lo, hi, n_pos, n_neg, n_boot, reason, resampled: "pairs"}; ties count 1/2.

    The point estimate is the ordinary Mann-Whitney AUC over all (a, b) combinations (equal to sklearn's
    roc_auc_score); each resample draws n pair indices with replacement and takes both members of each drawn pair.
    """
    a, b = _pair_scores(scores_a, "scores_a"), _pair_scores(scores_b, "scores_b")
    if len(a) != len(b):
        raise ValueError(f"scores_a and scores_b must be aligned by pair, got {len(a)} and {len(b)} scores")
    n = len(a)
    out: dict[str, Any] = {"value": math.nan, "lo": math.nan, "hi": math.nan, "n_pos": n, "n_neg": n,
                           "n_boot": int(n_boot), "reason": None, "resampled": "pairs"}
    if n == 0:
        out["reason"] = "AUC undefined: no pairs"
        return out
    uniq, bins = np.unique(np.concatenate([a, b]), return_inverse=True)
    k = len(uniq)
    neg_bins, pos_bins = bins[:n], bins[n:]
    out["value"] = float(_auc_from_counts(np.bincount(pos_bins, minlength=k), np.bincount(neg_bins, minlength=k)))
    if n_boot <= 0:
        return out
    rng = np.random.default_rng(seed)
    chunk = max(1, 4_000_000 // (k + 2 * n))  # bounds memory at a few tens of MB for any n
    aucs = []
    for start in range(0, n_boot, chunk):  # one chunk (all resamples at once) unless n is in the thousands
        rows = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(rows, n))  # the same pair indices for both members
        offsets = (np.arange(rows) * k)[:, None]

        def counts(member_bins: np.ndarray, idx: np.ndarray = idx, offsets: np.ndarray = offsets,
                   rows: int = rows) -> np.ndarray:
            flat = (member_bins[idx] + offsets).ravel()
            return np.bincount(flat, minlength=rows * k).reshape(rows, k)

        aucs.append(_auc_from_counts(counts(pos_bins), counts(neg_bins)))
    alpha = 1 - confidence
    lo, hi = np.quantile(np.concatenate(aucs), [alpha / 2, 1 - alpha / 2])
    out["lo"], out["hi"] = float(lo), float(hi)
    return out


def predict_labels(scores: Any, threshold: float) -> np.ndarray:
    """Hard predictions (int64, 1 = positive) by the benchmark's rule: positive iff score >= threshold."""
    return (as_numpy(scores) >= threshold).astype(np.int64)


def choose_threshold(labels: Any, scores: Any) -> float:
    """Operating point maximising Youden's J on validation data; ties go to the threshold closest to 0.5.

    J is constant on each interval between consecutive distinct scores; among the maximal intervals the one nearest
    0.5 wins, and within it 0.5 itself if it lies inside, otherwise the interval's midpoint (not a data point).
    """
    y = _binary(labels)
    s = _scores(scores, len(y))
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"cannot choose a threshold with one class only (n_pos={n_pos}, n_neg={n_neg})")
    uniq, bins = np.unique(s, return_inverse=True)
    k = len(uniq)
    # Cut c in 0..k: threshold in (uniq[c-1], uniq[c]], i.e. bins >= c are predicted positive.
    pos_below = np.concatenate([[0], np.cumsum(np.bincount(bins[y], minlength=k))])
    neg_below = np.concatenate([[0], np.cumsum(np.bincount(bins[~y], minlength=k))])
    j_num = (n_pos - pos_below) * n_neg + neg_below * n_pos  # exact integers: no float ties
    best = np.flatnonzero(j_num == j_num.max())
    edges = np.concatenate([[-np.inf], uniq, [np.inf]])  # cut c spans (edges[c], edges[c+1]]

    def distance(c: int) -> float:
        lo, hi = edges[c], edges[c + 1]
        return 0.0 if lo < 0.5 <= hi else (lo - 0.5 if lo >= 0.5 else 0.5 - hi)

    c = int(min(best, key=lambda c: (distance(c), c)))
    lo, hi = edges[c], edges[c + 1]
    if lo < 0.5 <= hi:
        return 0.5
    if c == 0:
        return float(hi)  # everything positive
    if c == k:
        return float(np.nextafter(lo, np.inf))  # everything negative
    return float((lo + hi) / 2)


def classification_metrics(
    labels: Any, scores: Any, threshold: float, n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Accuracy, sensitivity, specificity (Rate dicts) and AUC (bootstrap dict) at `threshold`, plus counts."""
    y = _binary(labels)
    s = _scores(scores, len(y))
    pred = predict_labels(s, threshold).astype(bool)
    return {
        "accuracy": rate(int((pred == y).sum()), len(y)).to_dict(),
        "auc": bootstrap_auc(y, s, n_boot=n_boot, seed=seed),
        "sensitivity": rate(int((pred & y).sum()), int(y.sum())).to_dict(),
        "specificity": rate(int((~pred & ~y).sum()), int((~y).sum())).to_dict(),
        "balanced_accuracy": {k: v for k, v in balanced_accuracy(y, pred == y).items()
                              if k in ("value", "lo", "hi")},
        "n": int(len(y)),
        "n_pos": int(y.sum()),
        "n_neg": int((~y).sum()),
        "threshold": float(threshold),
    }


@dataclass(frozen=True, eq=False)
class AttackOutcome:
    """Result of `attack_outcome`: a JSON-able `summary` plus per-image boolean arrays kept out of it."""

    summary: dict[str, Any]
    flags: np.ndarray  # robust: clean prediction correct AND adversarial prediction correct
    fooled: np.ndarray  # clean prediction correct AND adversarial prediction wrong


def attack_outcome(labels: Any, clean_pred: Any, adv_pred: Any) -> AttackOutcome:
    """Robust accuracy and the study's attack success per direction, over correctly classified originals."""
    y = _binary(labels)
    clean = _binary(clean_pred, "clean_pred")
    adv = _binary(adv_pred, "adv_pred")
    _same_length(y, clean, adv)
    correct = clean == y
    robust = correct & (adv == y)
    fooled = correct & (adv != y)
    tp, tn = correct & y, correct & ~y
    summary = {
        "clean_accuracy": rate(int(correct.sum()), len(y)).to_dict(),
        "robust_accuracy": rate(int(robust.sum()), len(y)).to_dict(),
        "adv_accuracy": rate(int((adv == y).sum()), len(y)).to_dict(),
        "pos_to_neg": rate(int((tp & ~adv).sum()), int(tp.sum())).to_dict(),
        "neg_to_pos": rate(int((tn & adv).sum()), int(tn.sum())).to_dict(),
        "overall": rate(int(fooled.sum()), int(correct.sum())).to_dict(),
        "n": int(len(y)),
        "n_pos": int(y.sum()),
        "n_neg": int((~y).sum()),
    }
    return AttackOutcome(summary=summary, flags=robust, fooled=fooled)


def combined_rate(first: Mapping[str, Any], second: Mapping[str, Any], weight: float = 0.5,
                  confidence: float = 0.95) -> dict[str, Any]:
    """weight x first + (1 - weight) x second of two independent rates, with a MOVER interval built from their
    Wilson limits (Zou and Donner 2008): balanced accuracy, or a fooled rate re-weighted to another class mix."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must lie in [0, 1], got {weight}")
    a, b = (rate(int(r["successes"]), int(r["n"]), confidence) for r in (first, second))
    out = {"value": math.nan, "lo": math.nan, "hi": math.nan, "weight": float(weight),
           "parts": [a.to_dict(), b.to_dict()], "method": "weighted Wilson rates, MOVER interval"}
    if a.n == 0 or b.n == 0:
        return out
    wa, wb = weight, 1.0 - weight
    value = wa * a.value + wb * b.value
    out["value"] = value
    out["lo"] = max(0.0, value - math.sqrt((wa * (a.value - a.lo)) ** 2 + (wb * (b.value - b.lo)) ** 2))
    out["hi"] = min(1.0, value + math.sqrt((wa * (a.hi - a.value)) ** 2 + (wb * (b.hi - b.value)) ** 2))
    return out


def balanced_accuracy(labels: Any, correct: Any, confidence: float = 0.95) -> dict[str, Any]:
    """Mean of sensitivity and specificity of per-image correct flags (50% for a constant classifier), with its
    MOVER interval: {value, lo, hi, sensitivity, specificity, n, n_pos, n_neg}."""
    y = _binary(labels)
    ok = _binary(correct, "correct")
    _same_length(y, ok)
    sens = rate(int((ok & y).sum()), int(y.sum()), confidence).to_dict()
    spec = rate(int((ok & ~y).sum()), int((~y).sum()), confidence).to_dict()
    out = combined_rate(sens, spec, 0.5, confidence)
    return {"value": out["value"], "lo": out["lo"], "hi": out["hi"], "sensitivity": sens, "specificity": spec,
            "n": int(len(y)), "n_pos": int(y.sum()), "n_neg": int((~y).sum())}


def flag_threshold(real_scores: Any, false_alarm_rate: float) -> float:
    """The lowest threshold t at which at most false_alarm_rate of real_scores are flagged (flagged: score > t)."""
    s = np.sort(as_numpy(real_scores).astype(np.float64))[::-1]
    if s.size == 0:
        raise ValueError("cannot calibrate a flag threshold without real images")
    if not 0 <= false_alarm_rate < 1:
        raise ValueError(f"false_alarm_rate must lie in [0, 1), got {false_alarm_rate}")
    k = int(math.floor(false_alarm_rate * s.size + 1e-9))  # images that may be flagged
    return float(s[k])  # flags exactly the (at most k) scores strictly above the (k+1)-th largest


def detection_outcome(fooled: Any, flagged_attacked: Any, flagged_clean: Any, correct: Any) -> dict[str, Any]:
    """For a defense that flags images as manipulated: fooled and NOT flagged (over correctly classified originals,
    the study's denominator), attacked images flagged, and real images flagged (false alarms)."""
    fooled, hit, alarm = (_binary(a, n) for a, n in ((fooled, "fooled"), (flagged_attacked, "flagged_attacked"),
                                                      (flagged_clean, "flagged_clean")))
    correct = _binary(correct, "correct")
    _same_length(fooled, hit, alarm, correct)
    return {"fooled_undetected": rate(int((fooled & ~hit).sum()), int(correct.sum())).to_dict(),
            "fooled_flagged": rate(int((fooled & hit).sum()), int(fooled.sum())).to_dict(),
            "flagged_attacked": rate(int(hit.sum()), len(hit)).to_dict(),
            "flagged_clean": rate(int(alarm.sum()), len(alarm)).to_dict()}


def worst_case(flags_by_attack: Mapping[str, Any]) -> np.ndarray:
    """Per-image AND of robust flags over attacks: robust only if every attack failed on that image."""
    if not flags_by_attack:
        raise ValueError("worst_case needs at least one attack's flags")
    arrays = {name: _binary(f, f"flags of {name!r}") for name, f in flags_by_attack.items()}
    _same_length(*arrays.values())
    return np.logical_and.reduce(list(arrays.values()))


def worst_case_rate(flags_by_attack: Mapping[str, Any], confidence: float = 0.95) -> Rate:
    """Worst-case robust accuracy over attacks (per-image AND), with its Wilson interval."""
    robust = worst_case(flags_by_attack)
    return rate(int(robust.sum()), len(robust), confidence)


def mcnemar_test(flags_a: Any, flags_b: Any, alternative: str = "two-sided") -> dict[str, Any]:
    """Exact paired McNemar test on per-image flags of the same images: {b, c, n, p_value, direction, alternative}.

    b = a True and b False, c = a False and b True; p is binomial(b; b + c, 1/2). alternative="greater" tests
    "a is better than b" one-sided (a regression when a is the committed run and b the rerun).
    """
    a, b_ = _binary(flags_a, "flags_a"), _binary(flags_b, "flags_b")
    _same_length(a, b_)
    b, c = int((a & ~b_).sum()), int((~a & b_).sum())
    p = 1.0 if b + c == 0 else float(stats.binomtest(b, b + c, 0.5, alternative=alternative).pvalue)
    direction = "a_better" if b > c else "b_better" if c > b else "equal"
    return {"b": b, "c": c, "n": int(len(a)), "p_value": p, "direction": direction, "alternative": alternative}


def to_jsonable(obj: Any) -> Any:
    """A copy that json.dumps accepts under allow_nan=False: numpy to Python, nan and +-inf to None, keys to str."""
    if isinstance(obj, Rate):
        return to_jsonable(obj.to_dict())
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "detach") or isinstance(obj, np.ndarray):
        return to_jsonable(as_numpy(obj).tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
