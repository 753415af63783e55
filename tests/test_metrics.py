"""Tests for benchmark/metrics.py and benchmark/attacking/perturbation.py: numbers against references, not 'it ran'."""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from scipy import optimize, stats
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from sklearn.metrics import roc_auc_score, roc_curve

from benchmark.attacking.perturbation import per_image_perturbation, perturbation_metrics, ssim_win_size
from benchmark.metrics import (
    Rate,
    attack_outcome,
    bootstrap_auc,
    choose_threshold,
    classification_metrics,
    detection_outcome,
    mcnemar_test,
    predict_labels,
    rate,
    to_jsonable,
    wilson_interval,
    worst_case,
    worst_case_rate,
)


def _wilson_by_inversion(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Reference: the p where the score statistic |k/n - p| / sqrt(p(1-p)/n) equals z, found by root finding."""
    phat = k / n
    f = lambda p: (phat - p) ** 2 - z * z * p * (1 - p) / n  # noqa: E731
    lo = 0.0 if k == 0 else optimize.brentq(f, 1e-15, phat)
    hi = 1.0 if k == n else optimize.brentq(f, phat, 1 - 1e-15)
    return lo, hi


# --- Wilson and Rate -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("k,n", [(42, 44), (209, 319), (251, 363), (1, 10), (5, 7), (3, 1000)])
def test_wilson_matches_score_test_inversion(k, n):
    assert wilson_interval(k, n) == pytest.approx(_wilson_by_inversion(k, n), abs=1e-10)


def test_wilson_known_values():
    assert wilson_interval(42, 44) == pytest.approx((0.8487, 0.9874), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)  # hi = z^2/(n+z^2)
    assert wilson_interval(10, 10) == pytest.approx((0.72247, 1.0), abs=1e-5)
    assert wilson_interval(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-5)


def test_wilson_empty_and_confidence():
    lo, hi = wilson_interval(0, 0)
    assert math.isnan(lo) and math.isnan(hi)
    wide, narrow = wilson_interval(30, 60, 0.99), wilson_interval(30, 60, 0.90)
    assert wide[0] < narrow[0] < 0.5 < narrow[1] < wide[1]
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


def test_rate_and_round_trip():
    r = rate(42, 44)
    assert r.value == pytest.approx(42 / 44) and (r.successes, r.n) == (42, 44)
    assert (r.lo, r.hi) == wilson_interval(42, 44)
    empty = rate(0, 0)
    assert math.isnan(empty.value) and math.isnan(empty.lo)
    back = Rate.from_dict(json.loads(json.dumps(to_jsonable(empty.to_dict()), allow_nan=False)))
    assert math.isnan(back.value) and back.n == 0
    assert Rate.from_dict(r.to_dict()) == r


# --- AUC -------------------------------------------------------------------------------------------------------

def _toy(n: int, seed: int = 0, separation: float = 1.0, decimals: int | None = None):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    s = 1 / (1 + np.exp(-(rng.normal(size=n) + separation * (2 * y - 1))))
    return y, (np.round(s, decimals) if decimals is not None else s)


@pytest.mark.parametrize("decimals", [None, 1, 2])
def test_auc_point_matches_sklearn_including_ties(decimals):
    y, s = _toy(300, seed=1, decimals=decimals)
    out = bootstrap_auc(y, s, n_boot=200)
    assert out["value"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert out["lo"] <= out["value"] <= out["hi"]
    assert (out["n_pos"], out["n_neg"], out["reason"]) == (int(y.sum()), int((1 - y).sum()), None)


def test_auc_all_tied_scores_is_half():
    out = bootstrap_auc([0, 1, 0, 1, 1], [0.3] * 5, n_boot=50)
    assert (out["value"], out["lo"], out["hi"]) == (0.5, 0.5, 0.5)


def test_bootstrap_equals_naive_stratified_resampling():
    y, s = _toy(60, seed=2, decimals=1)
    out = bootstrap_auc(y, s, n_boot=200, seed=7)
    pos, neg = s[y == 1], s[y == 0]
    rng = np.random.default_rng(7)  # the same draws, in the same order, as the vectorised code (one chunk)
    ip = rng.integers(0, len(pos), size=(200, len(pos)))
    ineg = rng.integers(0, len(neg), size=(200, len(neg)))
    lab = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    naive = [roc_auc_score(lab, np.r_[pos[ip[b]], neg[ineg[b]]]) for b in range(200)]
    assert (out["lo"], out["hi"]) == pytest.approx(tuple(np.quantile(naive, [0.025, 0.975])), abs=1e-12)


def test_bootstrap_deterministic_and_seed_dependent():
    y, s = _toy(200, seed=3)
    assert bootstrap_auc(y, s, seed=5) == bootstrap_auc(y, s, seed=5)
    assert bootstrap_auc(y, s, seed=5)["lo"] != bootstrap_auc(y, s, seed=6)["lo"]


def test_bootstrap_width_shrinks_with_n():
    small, large = bootstrap_auc(*_toy(100, seed=4)), bootstrap_auc(*_toy(3000, seed=4))
    assert (large["hi"] - large["lo"]) < 0.5 * (small["hi"] - small["lo"])


def test_bootstrap_is_fast():
    y, s = _toy(500, seed=5)
    bootstrap_auc(y, s, n_boot=10)  # warm-up
    start = time.perf_counter()
    bootstrap_auc(y, s, n_boot=1000)
    assert time.perf_counter() - start < 0.5


def test_auc_one_class_is_nan_with_reason():
    out = bootstrap_auc([1, 1, 1], [0.2, 0.5, 0.9])
    assert math.isnan(out["value"]) and math.isnan(out["lo"]) and "one class" in out["reason"]
    json.dumps(to_jsonable(out), allow_nan=False)


# --- operating point and clean metrics --------------------------------------------------------------------------

def test_threshold_separable_contains_half():
    assert choose_threshold([0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]) == 0.5


def test_threshold_separable_above_half_is_midpoint_of_gap():
    t = choose_threshold([0, 0, 1, 1], [0.6, 0.65, 0.8, 0.9])
    assert t == pytest.approx(0.725)
    assert predict_labels([0.6, 0.65, 0.8, 0.9], t).tolist() == [0, 0, 1, 1]


def test_threshold_tie_goes_to_interval_nearest_half():
    # J = 0.5 both on (0.1, 0.2] and on (0.6, 0.9]; the second is nearer 0.5, its midpoint is 0.75.
    assert choose_threshold([0, 1, 0, 1], [0.1, 0.2, 0.6, 0.9]) == pytest.approx(0.75)


def test_threshold_reaches_max_youden_of_roc_curve():
    y, s = _toy(400, seed=8, separation=0.6, decimals=2)
    t = choose_threshold(y, s)
    pred = predict_labels(s, t)
    j = pred[y == 1].mean() + (1 - pred[y == 0]).mean() - 1
    fpr, tpr, _ = roc_curve(y, s)
    assert j == pytest.approx((tpr - fpr).max(), abs=1e-12)


def test_threshold_one_class_raises():
    with pytest.raises(ValueError, match="one class"):
        choose_threshold([0, 0], [0.1, 0.2])


def test_classification_metrics_counts():
    y = [1, 1, 1, 0, 0, 0, 0]
    s = [0.9, 0.6, 0.3, 0.2, 0.1, 0.4, 0.7]  # at 0.5: TP 2, FN 1, TN 3, FP 1
    m = classification_metrics(y, s, 0.5, n_boot=100)
    assert m["sensitivity"] == rate(2, 3).to_dict()
    assert m["specificity"] == rate(3, 4).to_dict()
    assert m["accuracy"] == rate(5, 7).to_dict()
    assert m["auc"]["value"] == pytest.approx(roc_auc_score(y, s))
    assert (m["n"], m["n_pos"], m["n_neg"], m["threshold"]) == (7, 3, 4, 0.5)
    json.dumps(to_jsonable(m), allow_nan=False)


# --- attacks ---------------------------------------------------------------------------------------------------

def _study_arrays():
    """The study's table: 44 correct positives (42 fooled), 319 correct negatives (209 fooled), plus misclassified."""
    labels = np.r_[np.ones(50), np.zeros(330)].astype(int)
    clean = np.r_[np.ones(44), np.zeros(6), np.zeros(319), np.ones(11)].astype(int)
    adv = np.r_[np.zeros(42), np.ones(2), np.zeros(6), np.ones(209), np.zeros(110), np.ones(11)].astype(int)
    adv[45] = 1  # a misclassified positive the attack happens to flip to correct: not robust, but adv-correct
    return labels, clean, adv


def test_attack_outcome_reproduces_study_table():
    out = attack_outcome(*_study_arrays())
    s = out.summary
    assert (s["pos_to_neg"]["successes"], s["pos_to_neg"]["n"]) == (42, 44)
    assert s["pos_to_neg"]["value"] == pytest.approx(0.955, abs=5e-4)
    assert (s["neg_to_pos"]["successes"], s["neg_to_pos"]["n"]) == (209, 319)
    assert s["neg_to_pos"]["value"] == pytest.approx(0.655, abs=5e-4)
    assert (s["overall"]["successes"], s["overall"]["n"]) == (251, 363)
    assert s["overall"]["value"] == pytest.approx(0.691, abs=5e-4)
    assert (s["overall"]["lo"], s["overall"]["hi"]) == pytest.approx(_wilson_by_inversion(251, 363), abs=1e-10)
    assert s["clean_accuracy"]["successes"] == 363
    assert s["robust_accuracy"]["successes"] == 363 - 251 == int(out.flags.sum())
    assert s["adv_accuracy"]["successes"] == 113  # counts the flipped-to-correct image
    assert out.fooled.sum() == 251 and not (out.flags & out.fooled).any()
    assert (s["n"], s["n_pos"], s["n_neg"]) == (380, 50, 330)
    json.dumps(to_jsonable(s), allow_nan=False)


def test_attack_outcome_no_correct_positives_is_nan_rate():
    s = attack_outcome([1, 0], [0, 0], [0, 1]).summary
    assert s["pos_to_neg"]["n"] == 0 and math.isnan(s["pos_to_neg"]["value"])
    assert s["neg_to_pos"]["successes"] == 1


def test_worst_case_is_per_image_and_not_min_of_accuracies():
    labels = np.zeros(10, dtype=int)
    clean = labels.copy()
    flags = {}
    for name, fooled in {"fgsm": [0, 1], "pgd": [2, 3], "square": [4]}.items():
        adv = labels.copy()
        adv[fooled] = 1
        flags[name] = attack_outcome(labels, clean, adv).flags
    accs = {k: v.mean() for k, v in flags.items()}
    assert min(accs.values()) == pytest.approx(0.8)
    assert worst_case(flags).tolist() == [False] * 5 + [True] * 5
    wc = worst_case_rate(flags)
    assert (wc.successes, wc.n, wc.value) == (5, 10, 0.5) and (wc.lo, wc.hi) == wilson_interval(5, 10)
    with pytest.raises(ValueError):
        worst_case({"a": np.ones(3, bool), "b": np.ones(4, bool)})


# --- McNemar ---------------------------------------------------------------------------------------------------

def _paired(b: int, c: int, both: int = 20, neither: int = 5):
    a = np.r_[np.ones(b), np.zeros(c), np.ones(both), np.zeros(neither)].astype(bool)
    bb = np.r_[np.zeros(b), np.ones(c), np.ones(both), np.zeros(neither)].astype(bool)
    return a, bb


def test_mcnemar_known_table():
    out = mcnemar_test(*_paired(10, 2))
    assert (out["b"], out["c"], out["n"], out["direction"]) == (10, 2, 37, "a_better")
    assert out["p_value"] == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert mcnemar_test(*_paired(10, 2), alternative="greater")["p_value"] == pytest.approx(79 / 4096)
    assert mcnemar_test(*_paired(2, 10))["direction"] == "b_better"


def test_mcnemar_identical_runs_pass():
    a, _ = _paired(3, 0)
    out = mcnemar_test(a, a)
    assert (out["b"], out["c"], out["p_value"], out["direction"]) == (0, 0, 1.0, "equal")


# --- perturbation size -----------------------------------------------------------------------------------------

def _images(n=4, h=16, w=12, seed=0):
    return np.random.default_rng(seed).uniform(0.1, 0.9, size=(n, 1, h, w)).astype(np.float32)


def test_uniform_shift_norms_and_psnr():
    x, eps = _images(), 0.03
    out = perturbation_metrics(x, x + np.float32(eps))
    assert out["linf"]["max"] == pytest.approx(eps, rel=1e-5) and out["linf"]["min"] == pytest.approx(eps, rel=1e-5)
    assert out["l2"]["mean"] == pytest.approx(eps * math.sqrt(16 * 12), rel=1e-5)
    assert out["psnr"]["mean"] == pytest.approx(-20 * math.log10(eps), rel=1e-4)
    assert (out["n"], out["n_unchanged"], out["ssim_win_size"]) == (4, 0, 7)


def test_random_sign_perturbation_l2_and_skimage_agreement():
    x, eps = _images(n=3, h=20, w=20).astype(np.float64), 2 / 255
    signs = np.random.default_rng(1).choice([-1.0, 1.0], size=x.shape)
    adv = x + eps * signs
    per = per_image_perturbation(x, adv)
    assert per["l2"] == pytest.approx(np.full(3, eps * 20))
    for i in range(3):
        assert per["psnr"][i] == pytest.approx(peak_signal_noise_ratio(x[i, 0], adv[i, 0], data_range=1.0))
        assert per["ssim"][i] == pytest.approx(structural_similarity(x[i, 0], adv[i, 0], data_range=1.0))
    assert 0 < per["ssim"].min() < 1


def test_known_mse_psnr():
    x = np.zeros((1, 1, 4, 4))
    adv = x.copy()
    adv[0, 0, 0, :] = 0.2  # MSE = 4 * 0.04 / 16 = 0.01 -> 20 dB
    assert perturbation_metrics(x, adv)["psnr"]["mean"] == pytest.approx(20.0)
    assert perturbation_metrics(x, adv, data_range=2.0)["psnr"]["mean"] == pytest.approx(20 + 20 * math.log10(2))


def test_identical_images_give_inf_psnr_and_json_safe():
    x = _images(n=2)
    out = perturbation_metrics(x, x.copy())
    assert math.isinf(out["psnr"]["mean"]) and out["ssim"]["min"] == pytest.approx(1.0)
    assert out["linf"]["max"] == 0 and out["n_unchanged"] == 2
    safe = json.loads(json.dumps(to_jsonable(out), allow_nan=False))
    assert safe["psnr"]["mean"] is None and safe["linf"]["max"] == 0.0


@pytest.mark.parametrize("h,w,win", [(2, 5, 1), (1, 1, 1), (4, 6, 3), (6, 40, 5), (7, 7, 7), (100, 9, 7)])
def test_ssim_on_tiny_images(h, w, win):
    assert ssim_win_size(h, w) == win
    x = _images(n=2, h=h, w=w)
    per = per_image_perturbation(x[:, 0], np.clip(x[:, 0] + 0.05, 0, 1))  # (N, H, W) input
    assert np.isfinite(per["ssim"]).all() and (per["ssim"] <= 1).all()
    assert per_image_perturbation(x, x)["ssim"] == pytest.approx([1.0, 1.0])


def test_torch_tensors_and_shape_errors():
    torch = pytest.importorskip("torch")
    x = torch.rand(2, 1, 8, 8)
    out = perturbation_metrics(x, (x + 0.01).requires_grad_())
    assert out["linf"]["mean"] == pytest.approx(0.01, rel=1e-4)
    with pytest.raises(ValueError, match="shape"):
        perturbation_metrics(np.zeros((2, 1, 8, 8)), np.zeros((2, 1, 8, 9)))
    with pytest.raises(ValueError, match="float"):
        perturbation_metrics(np.zeros((2, 8, 8), dtype=np.uint16), np.zeros((2, 8, 8), dtype=np.uint16))
    assert attack_outcome(torch.tensor([1, 0]), torch.tensor([1, 0]), torch.tensor([0, 0])).summary[
        "pos_to_neg"]["successes"] == 1


# --- JSON ------------------------------------------------------------------------------------------------------

def test_to_jsonable_converts_numpy_nan_inf():
    obj = {"a": np.float32("nan"), "b": np.int64(3), "c": np.array([1.5, np.inf, -np.inf]), "d": (np.bool_(True),),
           1: rate(1, 2), "e": stats.norm.ppf(0.5)}
    out = to_jsonable(obj)
    assert out == {"a": None, "b": 3, "c": [1.5, None, None], "d": [True], "1": rate(1, 2).to_dict(), "e": 0.0}
    assert type(out["b"]) is int and type(out["d"][0]) is bool
    json.dumps(out, allow_nan=False)


def test_detection_outcome_counts_only_fooled_images_the_head_missed() -> None:
    correct = np.array([1, 1, 1, 1, 1, 0, 1, 1], bool)
    fooled = np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)
    flagged_attacked = np.array([1, 0, 0, 1, 0, 1, 0, 0], bool)
    flagged_clean = np.array([0, 0, 0, 1, 0, 0, 0, 0], bool)
    out = detection_outcome(fooled, flagged_attacked, flagged_clean, correct)
    assert (out["fooled_undetected"]["successes"], out["fooled_undetected"]["n"]) == (2, 7)
    assert (out["fooled_flagged"]["successes"], out["fooled_flagged"]["n"]) == (1, 3)
    assert (out["flagged_attacked"]["successes"], out["flagged_clean"]["successes"]) == (3, 1)
    with pytest.raises(ValueError, match="differ in length"):
        detection_outcome(fooled, flagged_attacked, flagged_clean[:4], correct)
