"""Multi-reader multi-case ROC analysis: Obuchowski-Rockette with Hillis' denominator degrees of freedom.

Readers' empirical (trapezoid, Wilcoxon) AUCs from ordinal confidence ratings; the case-sampling covariances of those
AUCs by the jackknife over cases (the default of RJafroc and MRMCaov) or by DeLong's structural components. Readers
and cases are both random (RRRC): the intervals generalise to other readers and other cases.

References: Obuchowski and Rockette 1995 (Commun Stat Simul Comput 24:285); Hillis 2007 (Stat Med 26:596) for the
degrees of freedom and the single-modality intervals; DeLong et al. 1988 (Biometrics 44:837).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

__all__ = ["ORResult", "auc", "auc_covariance", "obuchowski_rockette"]

COVARIANCES = ("jackknife", "delong")


def _check(ratings: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ratings as float (..., cases) and truth as bool (cases,), with at least one case of each class."""
    ratings, truth = np.asarray(ratings, dtype=float), np.asarray(truth)
    if ratings.shape[-1] != truth.shape[0]:
        raise ValueError(f"ratings have {ratings.shape[-1]} cases but truth has {truth.shape[0]}; pass one truth "
                         "per case")
    if not np.isin(truth, (0, 1)).all():
        raise ValueError("truth must be 0 (negative) or 1 (positive) for every case")
    truth = truth.astype(bool)
    if truth.sum() < 2 or (~truth).sum() < 2:
        raise ValueError(f"truth has {int(truth.sum())} positive and {int((~truth).sum())} negative cases; "
                         "an AUC and its variance need at least 2 of each")
    return ratings, truth


def _psi(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """(..., m, n) kernel of the Mann-Whitney statistic: 1 when the positive is rated higher, 1/2 on a tie."""
    diff = pos[..., :, None] - neg[..., None, :]
    return (diff > 0) + 0.5 * (diff == 0)


def auc(ratings: np.ndarray, truth: np.ndarray) -> float | np.ndarray:
    """Empirical (trapezoid) AUC of ratings (..., cases) against truth (cases,); ties count one half."""
    ratings, truth = _check(ratings, truth)
    return _psi(ratings[..., truth], ratings[..., ~truth]).mean(axis=(-2, -1))


def auc_covariance(ratings: np.ndarray, truth: np.ndarray, method: str = "jackknife") -> np.ndarray:
    """(K, K) case-sampling covariance of the AUCs of K rating rows (K, cases): jackknife or DeLong."""
    ratings, truth = _check(np.atleast_2d(ratings), truth)
    psi = _psi(ratings[:, truth], ratings[:, ~truth])  # (K, m, n)
    m, n = psi.shape[1:]
    if method == "delong":
        v10, v01 = psi.mean(axis=2), psi.mean(axis=1)  # structural components per positive / negative case
        return np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    if method != "jackknife":
        raise ValueError(f"covariance method '{method}' is unknown; use one of {', '.join(COVARIANCES)}")
    total, rows, cols = psi.sum(axis=(1, 2)), psi.sum(axis=2), psi.sum(axis=1)
    # leaving out one positive removes its row of psi, one negative its column
    without_pos = (total[:, None] - rows) / ((m - 1) * n)  # (K, m)
    without_neg = (total[:, None] - cols) / (m * (n - 1))  # (K, n)
    pseudo = np.concatenate([without_pos, without_neg], axis=1)  # (K, cases): AUC with each case left out
    c = pseudo.shape[1]
    centred = pseudo - pseudo.mean(axis=1, keepdims=True)
    return (c - 1) / c * centred @ centred.T


@dataclass(frozen=True)
class ORResult:
    """An Obuchowski-Rockette analysis: AUCs, covariances, the modality test and the intervals."""

    auc: list[list[float]]  # [modality][reader]
    modality_auc: list[float]
    modality_lo: list[float]  # per-modality RRRC interval (Hillis 2007)
    modality_hi: list[float]
    modality_se: list[float]
    modality_df: list[float]
    var: float  # mean case-sampling variance of one reader-modality AUC
    cov1: float  # same reader, different modalities
    cov2: float  # same modality, different readers
    cov3: float  # different modalities and readers
    ms_t: float | None
    ms_tr: float | None
    f: float | None  # modality effect (None with one modality)
    ndf: float | None
    ddf: float | None  # Hillis' denominator degrees of freedom
    p: float | None
    diff: float | None  # first modality minus second (two modalities)
    diff_lo: float | None
    diff_hi: float | None
    readers: int
    cases: int
    covariance: str
    alpha: float

    def to_dict(self) -> dict:
        """The result as JSON-able data."""
        return asdict(self)


def _mean_cov(cov: np.ndarray, t: int, r: int, same_modality: bool, same_reader: bool) -> float:
    """Mean of the covariances between (i, j) and (i', j') with i == i' and j == j' as asked (never both)."""
    vals = [cov[i * r + j, k * r + q] for i in range(t) for j in range(r) for k in range(t) for q in range(r)
            if (i == k) == same_modality and (j == q) == same_reader]
    return float(np.mean(vals)) if vals else 0.0


def obuchowski_rockette(ratings: np.ndarray, truth: np.ndarray, covariance: str = "jackknife",
                        alpha: float = 0.05) -> ORResult:
    """OR analysis (random readers, random cases) of ratings (modalities, readers, cases) against truth (cases,)."""
    ratings, truth = _check(ratings, truth)
    if ratings.ndim != 3:
        raise ValueError(f"ratings must be (modalities, readers, cases), not shape {ratings.shape}")
    t, r, c = ratings.shape
    if r < 2:
        raise ValueError(f"{r} reader: random-reader analysis needs at least 2 readers who rated every case")
    theta = np.asarray(auc(ratings, truth))  # (t, r)
    cov = auc_covariance(ratings.reshape(t * r, c), truth, covariance)
    var = float(np.mean(np.diag(cov)))
    cov1 = _mean_cov(cov, t, r, False, True)
    cov2 = _mean_cov(cov, t, r, True, False)
    cov3 = _mean_cov(cov, t, r, False, False)
    los, his, ses, dfs = [], [], [], []
    for i in range(t):
        ms_r = float(np.sum((theta[i] - theta[i].mean()) ** 2) / (r - 1))
        cov2_i = _mean_cov(cov[i * r:(i + 1) * r, i * r:(i + 1) * r], 1, r, True, False)
        denom = ms_r + r * max(cov2_i, 0.0)
        se = float(np.sqrt(denom / r))
        df = float(denom ** 2 / (ms_r ** 2 / (r - 1))) if ms_r > 0 else float("inf")
        half = stats.t.ppf(1 - alpha / 2, df) * se
        los.append(float(theta[i].mean() - half))
        his.append(float(theta[i].mean() + half))
        ses.append(se)
        dfs.append(df)
    ms_t = ms_tr = f = ndf = ddf = p = diff = diff_lo = diff_hi = None
    if t > 1:
        grand, by_t, by_r = theta.mean(), theta.mean(axis=1), theta.mean(axis=0)
        ms_t = float(r * np.sum((by_t - grand) ** 2) / (t - 1))
        ms_tr = float(np.sum((theta - by_t[:, None] - by_r[None, :] + grand) ** 2) / ((t - 1) * (r - 1)))
        denom = ms_tr + r * max(cov2 - cov3, 0.0)
        ndf = float(t - 1)
        ddf = float(denom ** 2 / (ms_tr ** 2 / ((t - 1) * (r - 1)))) if ms_tr > 0 else float("inf")
        f = float(ms_t / denom) if denom > 0 else (0.0 if ms_t == 0 else float("inf"))
        p = float(stats.f.sf(f, ndf, ddf))
        if t == 2:
            diff = float(by_t[0] - by_t[1])
            half = stats.t.ppf(1 - alpha / 2, ddf) * np.sqrt(2 / r * denom)
            diff_lo, diff_hi = diff - float(half), diff + float(half)
    return ORResult(theta.tolist(), theta.mean(axis=1).tolist(), los, his, ses, dfs, var, cov1, cov2, cov3, ms_t,
                    ms_tr, f, ndf, ddf, p, diff, diff_lo, diff_hi, r, c, covariance, alpha)
