"""The reader study's statistics against independent, slow computations written from the definitions.

Obuchowski-Rockette: every quantity (AUCs, jackknife covariances, mean squares, F, Hillis' df, p, intervals) is
recomputed with plain loops over cases, readers and modalities (no shared code with benchmark.reader_study.stats.mrmc).
A published reference: the Van Dyke et al. (1993) data (5 readers, 2 modalities, 69 negative and 45 positive cases,
5-point ratings; cine MRI vs spin-echo MRI for aortic dissection), as distributed with RJafroc
(github.com/dpc10ster/RJafroc, inst/extdata/datasets/VD.lrc, copied unchanged to tests/data/van_dyke_1993.lrc), and
its OR analysis as printed by MRMCaov's README (github.com/brian-j-smith/MRMCaov, version 0.1.8, `mrmc(empirical_auc
(truth, rating), treatment, reader, case, data = VanDyke)`, jackknife covariances): every number to all printed digits.
Fleiss' kappa: the worked example of Fleiss (1971) as reproduced on Wikipedia's "Fleiss' kappa" page (10 items,
14 raters, 5 categories; kappa 0.210), recomputed by hand from the definition.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from benchmark.reader_study.stats.agreement import category_counts, fleiss_kappa, fleiss_kappa_interval
from benchmark.reader_study.stats.mrmc import auc, auc_covariance, obuchowski_rockette

VAN_DYKE = Path(__file__).parent / "data" / "van_dyke_1993.lrc"


def _slow_auc(ratings: list[float], truth: list[int]) -> float:
    pos = [x for x, y in zip(ratings, truth) if y == 1]
    neg = [x for x, y in zip(ratings, truth) if y == 0]
    total = 0.0
    for a in pos:
        for b in neg:
            total += 1.0 if a > b else 0.5 if a == b else 0.0
    return total / (len(pos) * len(neg))


def _slow_or(ratings: np.ndarray, truth: np.ndarray) -> dict:
    """OR-Hillis from the definitions, with loops: jackknife over cases, then the two-way ANOVA of the AUCs."""
    t, r, c = ratings.shape
    truth = [int(y) for y in truth]
    theta = [[_slow_auc(list(ratings[i, j]), truth) for j in range(r)] for i in range(t)]
    jack = {}  # (i, j) -> AUC with each case left out
    for i in range(t):
        for j in range(r):
            jack[i, j] = [_slow_auc([x for q, x in enumerate(ratings[i, j]) if q != k],
                                    [y for q, y in enumerate(truth) if q != k]) for k in range(c)]
    def cov(a: tuple, b: tuple) -> float:
        ma, mb = sum(jack[a]) / c, sum(jack[b]) / c
        return (c - 1) / c * sum((jack[a][k] - ma) * (jack[b][k] - mb) for k in range(c))
    groups = {"cov1": [], "cov2": [], "cov3": []}
    for i in range(t):
        for j in range(r):
            for k in range(t):
                for q in range(r):
                    if i != k and j == q:
                        groups["cov1"].append(cov((i, j), (k, q)))
                    elif i == k and j != q:
                        groups["cov2"].append(cov((i, j), (k, q)))
                    elif i != k and j != q:
                        groups["cov3"].append(cov((i, j), (k, q)))
    out = {name: sum(v) / len(v) if v else 0.0 for name, v in groups.items()}
    mean_t = [sum(theta[i]) / r for i in range(t)]
    mean_r = [sum(theta[i][j] for i in range(t)) / t for j in range(r)]
    grand = sum(mean_t) / t
    out["auc"], out["modality_auc"] = theta, mean_t
    out["modality_ci"] = []
    for i in range(t):
        ms_r = sum((theta[i][j] - mean_t[i]) ** 2 for j in range(r)) / (r - 1)
        within = [cov((i, j), (i, q)) for j in range(r) for q in range(r) if j != q]
        cov2_i = sum(within) / len(within)
        se = math.sqrt((ms_r + r * max(cov2_i, 0)) / r)
        df = (ms_r + r * max(cov2_i, 0)) ** 2 / (ms_r ** 2 / (r - 1))
        out["modality_ci"].append((mean_t[i] - stats.t.ppf(0.975, df) * se, mean_t[i] + stats.t.ppf(0.975, df) * se))
    if t > 1:
        ms_t = r * sum((m - grand) ** 2 for m in mean_t) / (t - 1)
        ms_tr = sum((theta[i][j] - mean_t[i] - mean_r[j] + grand) ** 2 for i in range(t) for j in range(r)) / (
            (t - 1) * (r - 1))
        denom = ms_tr + r * max(out["cov2"] - out["cov3"], 0)
        out["f"] = ms_t / denom
        out["ddf"] = denom ** 2 / (ms_tr ** 2 / ((t - 1) * (r - 1)))
        out["p"] = 1 - stats.f.cdf(out["f"], t - 1, out["ddf"])
        half = stats.t.ppf(0.975, out["ddf"]) * math.sqrt(2 / r * denom)
        out["diff_ci"] = (mean_t[0] - mean_t[1] - half, mean_t[0] - mean_t[1] + half)
    return out


def _ratings(seed: int, t: int = 2, r: int = 4, c: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Ordinal 1..6 ratings: a case effect, a reader effect, noise; modality 0 discriminates better than 1."""
    rng = np.random.default_rng(seed)
    truth = np.array([1] * (c // 2) + [0] * (c - c // 2))
    case = rng.normal(size=c)
    latent = np.stack([[truth * (1.6 - 0.7 * i) + 0.6 * case + rng.normal(scale=0.3) + rng.normal(size=c)
                        for _ in range(r)] for i in range(t)])
    return np.clip(np.round(latent * 1.3 + 3), 1, 6), truth


def _read_lrc(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Ratings (modalities, readers, cases) and truth of an LRC file: per reader its name, then one line per case
    (a rating per modality, the case number), negatives, '*', positives, '*'; '#' ends the file."""
    lines = path.read_text().splitlines()
    modalities = len(lines[2].split())
    rows, reader, positive, k = [], 0, 0, 4  # line 0 a description, 1 the first reader, 2 modalities, 3 L/S flags
    while lines[k] != "#":
        if lines[k] == "*":
            positive = 1 - positive
            if positive == 0 and lines[k + 1] != "#":
                reader += 1
                k += 1  # the next reader's name
        else:
            *values, case = lines[k].split()
            rows.append((reader, int(case), positive, [float(v) for v in values]))
        k += 1
    cases = max(r[1] for r in rows) + 1
    ratings, truth = np.zeros((modalities, reader + 1, cases)), np.zeros(cases, dtype=int)
    for r, case, positive, values in rows:
        ratings[:, r, case], truth[case] = values, positive
    return ratings, truth


def test_obuchowski_rockette_reproduces_the_published_van_dyke_analysis() -> None:
    ratings, truth = _read_lrc(VAN_DYKE)
    assert ratings.shape == (2, 5, 114) and truth.sum() == 45
    res = obuchowski_rockette(ratings, truth)
    # MRMCaov's printed output, to its printed digits
    assert res.var == pytest.approx(0.0008022883, abs=5e-11)
    assert res.cov1 == pytest.approx(0.0003466137, abs=5e-11)
    assert res.cov2 == pytest.approx(0.0003440748, abs=5e-11)
    assert res.cov3 == pytest.approx(0.0002390284, abs=5e-11)
    assert res.ms_t == pytest.approx(0.004796171, abs=5e-10)
    assert res.ms_tr == pytest.approx(0.0005510306, abs=5e-11)
    assert res.f == pytest.approx(4.456319, abs=5e-7)
    assert res.ddf == pytest.approx(15.25967, abs=5e-6)
    assert res.p == pytest.approx(0.05166569, abs=5e-9)
    assert res.diff == pytest.approx(-0.04380032, abs=5e-9)
    assert (res.diff_lo, res.diff_hi) == pytest.approx((-0.0879594986, 0.0003588544), abs=5e-11)
    assert res.modality_auc == pytest.approx([0.8970370, 0.9408374], abs=5e-8)
    assert res.modality_se == pytest.approx([0.03317360, 0.02156637], abs=5e-9)
    assert res.modality_df == pytest.approx([12.74465, 12.71019], abs=5e-6)
    assert res.modality_lo == pytest.approx([0.8252236, 0.8941378], abs=5e-8)
    assert res.modality_hi == pytest.approx([0.9688505, 0.9875369], abs=5e-8)


def test_auc_counts_ties_as_half_and_matches_the_pair_count() -> None:
    truth = np.array([1, 1, 0, 0])
    assert auc(np.array([0.9, 0.4, 0.5, 0.1]), truth) == 0.75
    assert auc(np.array([3, 2, 2, 1]), truth) == 0.875  # 3 wins, 1 tie out of 4 pairs
    r, y = _ratings(3)
    assert float(auc(r[0, 0], y)) == pytest.approx(_slow_auc(list(r[0, 0]), list(y)), abs=1e-12)


def test_delong_variance_of_a_hand_worked_auc() -> None:
    # positives 0.9, 0.4; negatives 0.5, 0.1: V10 = (1, 1/2), V01 = (1/2, 1); S10 = S01 = 1/8; var = 1/16 + 1/16
    cov = auc_covariance(np.array([[0.9, 0.4, 0.5, 0.1]]), np.array([1, 1, 0, 0]), "delong")
    assert cov.shape == (1, 1) and cov[0, 0] == pytest.approx(0.125, abs=1e-15)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_obuchowski_rockette_equals_the_loops(seed: int) -> None:
    ratings, truth = _ratings(seed)
    got = obuchowski_rockette(ratings, truth)
    slow = _slow_or(ratings, truth)
    assert np.allclose(got.auc, slow["auc"], atol=1e-12)
    for name in ("cov1", "cov2", "cov3"):
        assert getattr(got, name) == pytest.approx(slow[name], abs=1e-12), name
    assert got.f == pytest.approx(slow["f"], rel=1e-10)
    assert got.ddf == pytest.approx(slow["ddf"], rel=1e-10)
    assert got.p == pytest.approx(slow["p"], abs=1e-10)
    assert (got.diff_lo, got.diff_hi) == pytest.approx(slow["diff_ci"], abs=1e-10)
    for i in range(2):
        assert (got.modality_lo[i], got.modality_hi[i]) == pytest.approx(slow["modality_ci"][i], abs=1e-10)
    assert got.modality_auc[0] > got.modality_auc[1]  # the simulated effect is found
    assert got.ndf == 1 and got.readers == 4 and got.cases == 30


def test_single_modality_interval_and_delong_close_to_jackknife() -> None:
    ratings, truth = _ratings(5, t=1, r=5, c=60)
    jack = obuchowski_rockette(ratings, truth)
    slow = _slow_or(ratings, truth)
    assert (jack.modality_lo[0], jack.modality_hi[0]) == pytest.approx(slow["modality_ci"][0], abs=1e-10)
    assert jack.f is None and jack.diff is None
    delong = obuchowski_rockette(ratings, truth, covariance="delong")
    # the two estimators differ by O(1/c); on 60 cases within a tenth of each other
    assert delong.var == pytest.approx(jack.var, rel=0.1)
    assert delong.modality_lo[0] == pytest.approx(jack.modality_lo[0], abs=0.01)


def test_a_strong_modality_difference_is_significant_and_none_is_not() -> None:
    ratings, truth = _ratings(7, r=6, c=80)
    strong = obuchowski_rockette(ratings, truth)
    assert strong.p < 0.05 and strong.diff_lo > 0
    same = np.stack([ratings[0], ratings[0][::-1]])  # the same readers in another order: equal means
    res = obuchowski_rockette(same, truth)
    assert res.diff == pytest.approx(0, abs=1e-15) and res.p == pytest.approx(1.0)
    assert res.diff_lo < 0 < res.diff_hi


def test_bad_input_names_the_problem() -> None:
    with pytest.raises(ValueError, match="at least 2 of each"):
        auc(np.array([1, 2, 3]), np.array([1, 0, 0]))
    with pytest.raises(ValueError, match="2 readers"):
        obuchowski_rockette(np.ones((1, 1, 4)), np.array([1, 1, 0, 0]))
    with pytest.raises(ValueError, match="unknown"):
        auc_covariance(np.ones((1, 4)), np.array([1, 1, 0, 0]), "bootstrap")


FLEISS_1971 = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])


def test_fleiss_kappa_on_the_worked_example() -> None:
    n, items = 14, len(FLEISS_1971)
    p_j = [sum(row[j] for row in FLEISS_1971) / (items * n) for j in range(5)]
    p_i = [(sum(x * x for x in row) - n) / (n * (n - 1)) for row in FLEISS_1971]
    by_hand = (sum(p_i) / items - sum(p * p for p in p_j)) / (1 - sum(p * p for p in p_j))
    assert fleiss_kappa(FLEISS_1971) == pytest.approx(by_hand, abs=1e-12)
    assert round(fleiss_kappa(FLEISS_1971), 3) == 0.210  # the published value
    lo, hi = fleiss_kappa_interval(FLEISS_1971, resamples=500)
    assert lo < 0.210 < hi


def test_kappa_is_one_for_perfect_agreement_and_counts_come_from_calls() -> None:
    calls = np.array([[0, 1, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0]])  # 3 readers, 4 items
    counts = category_counts(calls, 2)
    assert counts.tolist() == [[3, 0], [0, 3], [0, 3], [3, 0]]
    assert fleiss_kappa(counts) == 1.0
    # two readers who disagree on every item: observed agreement 0, chance 1/2 -> kappa -1
    assert fleiss_kappa(category_counts(np.array([[0, 1, 0, 1], [1, 0, 1, 0]]), 2)) == -1.0
