"""Tests for benchmark.metrics.paired_bootstrap_auc: the real-vs-fake detector's AUC, resampled by image pair."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from benchmark.metrics import bootstrap_auc, paired_bootstrap_auc


def _pairs(n, seed, decimals=None):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = a + rng.normal(0.5, 1.0, size=n)
    return (np.round(a, decimals), np.round(b, decimals)) if decimals is not None else (a, b)


@pytest.mark.parametrize("decimals", [None, 1])
def test_paired_auc_point_matches_sklearn_including_ties(decimals):
    a, b = _pairs(200, seed=1, decimals=decimals)
    out = paired_bootstrap_auc(a, b, n_boot=300, seed=3)
    expected = roc_auc_score(np.r_[np.zeros(200), np.ones(200)], np.r_[a, b])
    assert out["value"] == pytest.approx(expected, abs=1e-12)
    assert out["lo"] <= out["value"] <= out["hi"] and out["lo"] < out["hi"]
    assert (out["n_pos"], out["n_neg"], out["n_boot"], out["reason"], out["resampled"]) == (200, 200, 300, None,
                                                                                          "pairs")
    assert set(bootstrap_auc(np.r_[np.zeros(200), np.ones(200)], np.r_[a, b], n_boot=10)) | {"resampled"} == set(out)


def test_paired_bootstrap_equals_naive_pair_resampling():
    a, b = _pairs(40, seed=2, decimals=1)
    out = paired_bootstrap_auc(a, b, n_boot=200, seed=7)
    idx = np.random.default_rng(7).integers(0, 40, size=(200, 40))  # the same draws as the vectorised code
    lab = np.r_[np.zeros(40), np.ones(40)]
    naive = [roc_auc_score(lab, np.r_[a[i], b[i]]) for i in idx]
    assert (out["lo"], out["hi"]) == pytest.approx(tuple(np.quantile(naive, [0.025, 0.975])), abs=1e-12)


def test_paired_auc_separated_pairs_and_seeding():
    a = np.linspace(0, 0.4, 30)
    out = paired_bootstrap_auc(a, a + 0.5)
    assert (out["value"], out["lo"], out["hi"]) == (1.0, 1.0, 1.0)
    a, b = _pairs(100, seed=4)
    assert paired_bootstrap_auc(a, b, seed=5) == paired_bootstrap_auc(a, b, seed=5)
    assert paired_bootstrap_auc(a, b, seed=5)["lo"] != paired_bootstrap_auc(a, b, seed=6)["lo"]


def test_paired_interval_much_narrower_when_pairs_share_their_spread():
    rng = np.random.default_rng(8)
    a = rng.normal(0, 10, size=150)  # large between-pair spread ...
    b = a + 0.5  # ... and every fake a little above its own real image
    paired = paired_bootstrap_auc(a, b, seed=0)
    unpaired = bootstrap_auc(np.r_[np.zeros(150), np.ones(150)], np.r_[a, b], seed=0)
    assert paired["value"] == unpaired["value"]
    assert (paired["hi"] - paired["lo"]) < 0.5 * (unpaired["hi"] - unpaired["lo"])


def test_paired_auc_errors_empty_and_speed():
    with pytest.raises(ValueError, match="aligned by pair"):
        paired_bootstrap_auc([0.1, 0.2], [0.3])
    with pytest.raises(ValueError, match="nan or inf"):
        paired_bootstrap_auc([0.1, np.nan], [0.3, 0.4])
    out = paired_bootstrap_auc([], [])
    assert math.isnan(out["value"]) and out["reason"] == "AUC undefined: no pairs"
