"""Tests for benchmark/attacking/perturbation.py's region option (SSIM/PSNR inside the breast) and `breast_mask`.

The whole-image numbers are tested against skimage in tests/test_metrics.py.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from benchmark.attacking.perturbation import breast_mask, per_image_perturbation, perturbation_metrics, summarise


def _mammo(n=3, h=32, w=32, seed=0):
    """Images with a breast (random tissue in [0.2, 0.9]) in the left `w // 2` columns and a black background."""
    x = np.zeros((n, 1, h, w))
    x[..., : w // 2] = np.random.default_rng(seed).uniform(0.2, 0.9, size=(n, 1, h, w // 2))
    return x


def _without_region_keys(d):
    return {k: v for k, v in d.items() if k not in ("region", "n_empty_region")}


@pytest.mark.parametrize("channels", [1, 3])
def test_region_covering_everything_gives_the_whole_image_numbers(channels):
    rng = np.random.default_rng(1)
    x = rng.uniform(0.1, 0.9, size=(4, channels, 20, 24))
    adv = np.clip(x + rng.normal(0, 0.03, size=x.shape), 0, 1)
    everywhere = np.ones((4, 20, 24), dtype=bool)  # (N, H, W): every channel
    plain, inside = per_image_perturbation(x, adv), per_image_perturbation(x, adv, region=everywhere)
    for key in plain:
        np.testing.assert_allclose(inside[key], plain[key], rtol=1e-12, atol=0)
    whole, region = perturbation_metrics(x, adv), perturbation_metrics(x, adv, region=np.ones(x.shape, bool))
    assert (whole["region"], region["region"], whole["n_empty_region"], region["n_empty_region"]) == (
        "image", "breast", 0, 0)
    plain_keys, region_keys = _without_region_keys(whole), _without_region_keys(region)
    assert plain_keys.keys() == region_keys.keys()
    for key, value in plain_keys.items():
        assert region_keys[key] == (pytest.approx(value, rel=1e-12) if isinstance(value, dict) else value), key


def test_psnr_inside_the_breast_is_lower_by_the_background_share():
    x = _mammo(n=1)
    adv = x.copy()
    adv[0, 0, 4:12, 2:10] += 0.1  # an edit inside the breast (64 pixels)
    breast = breast_mask(x)
    n_breast, n_all = int(breast.sum()), x.size
    assert n_breast == 32 * 16
    mse_region, mse_whole = 64 * 0.01 / n_breast, 64 * 0.01 / n_all
    inside, whole = per_image_perturbation(x, adv, region=breast), per_image_perturbation(x, adv)
    assert inside["psnr"][0] == pytest.approx(10 * math.log10(1 / mse_region), rel=1e-9)
    assert whole["psnr"][0] == pytest.approx(10 * math.log10(1 / mse_whole), rel=1e-9)
    assert whole["psnr"][0] - inside["psnr"][0] == pytest.approx(10 * math.log10(2), rel=1e-9)  # half is background
    assert inside["ssim"][0] < whole["ssim"][0] < 1  # the unchanged background flatters SSIM too
    assert (inside["linf"], inside["l2"]) == (whole["linf"], whole["l2"])  # budgets stay whole-image
    assert inside["l2"][0] == pytest.approx(math.sqrt(64 * 0.01))


def test_empty_region_is_nan_counted_and_left_out_of_summaries():
    x = _mammo(n=3, seed=2)
    adv = np.clip(x + 0.05 * (x > 0), 0, 1)
    region = breast_mask(x)
    region[1] = False  # e.g. an image with no tissue above the level
    per = per_image_perturbation(x, adv, region=region)
    assert np.isnan(per["psnr"][1]) and np.isnan(per["ssim"][1])
    assert np.isfinite(per["psnr"][[0, 2]]).all() and np.isfinite(per["ssim"][[0, 2]]).all()
    assert np.isfinite(per["linf"]).all() and per["linf"][1] == pytest.approx(0.05)
    out = perturbation_metrics(x, adv, region=region)
    assert (out["n"], out["n_empty_region"], out["n_unchanged"]) == (3, 1, 0)
    assert out["psnr"]["mean"] == pytest.approx(per["psnr"][[0, 2]].mean())
    assert out["ssim"]["min"] == pytest.approx(per["ssim"][[0, 2]].min())
    assert summarise(np.array([np.nan, 1.0, 3.0])) == {"mean": 2.0, "median": 2.0, "min": 1.0, "max": 3.0}
    assert all(math.isnan(v) for v in summarise(np.array([np.nan, np.nan])).values())


def test_ssim_inside_an_unchanged_region_is_one():
    x = _mammo(n=2, seed=3)
    adv = x.copy()
    adv[..., 20:30, 2:8] = np.clip(adv[..., 20:30, 2:8] + 0.2, 0, 1)  # edit rows 20..29
    untouched = np.zeros(x.shape, dtype=bool)
    untouched[..., :14, :16] = True  # rows 0..13: more than half a window (3 px) away from the edit
    per = per_image_perturbation(x, adv, region=untouched)
    assert per["ssim"] == pytest.approx([1.0, 1.0], abs=1e-12)
    assert np.isinf(per["psnr"]).all()  # nothing changed inside the region
    assert (per_image_perturbation(x, adv)["ssim"] < 1).all()


def test_region_only_on_the_edge_strip_has_nan_ssim_but_a_psnr():
    x = _mammo(n=1, seed=4)
    adv = np.clip(x + 0.05, 0, 1)
    edge = np.zeros(x.shape, dtype=bool)
    edge[..., :, :2] = True  # within half a 7-pixel window of the border, which skimage's mean leaves out as well
    per = per_image_perturbation(x, adv, region=edge)
    assert np.isnan(per["ssim"][0]) and np.isfinite(per["psnr"][0])
    assert perturbation_metrics(x, adv, region=edge)["n_empty_region"] == 0


def test_breast_mask_and_region_checks():
    x = np.array([[[0.0, 0.02, 0.021, 0.5]]], dtype=np.float32)  # (N, H, W)
    assert breast_mask(x).tolist() == [[[False, False, True, True]]]
    assert breast_mask(x, level=0.3).dtype == np.bool_ and breast_mask(x, level=0.3).sum() == 1
    torch = pytest.importorskip("torch")
    assert breast_mask(torch.tensor(x)).tolist() == [[[False, False, True, True]]]
    imgs = _mammo(n=2)
    with pytest.raises(ValueError, match="boolean"):
        per_image_perturbation(imgs, imgs, region=np.ones(imgs.shape))
    with pytest.raises(ValueError, match="does not fit"):
        per_image_perturbation(imgs, imgs, region=np.ones((2, 16, 16), bool))
