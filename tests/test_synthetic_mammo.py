"""Synthetic mammograms: determinism, anatomy, 1/f^beta texture, lesion sizes, no histogram shortcut, the entry."""
from __future__ import annotations

import csv
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pydicom
import pytest
from PIL import Image
from scipy import ndimage

from benchmark.data.phantom import (
    MASK_CALCIFICATION,
    MASK_MASS,
    SynthConfig,
    draw_case,
    fit_beta,
    generate,
    power_law_field,
    render_view,
)
from benchmark.datasets.synthetic_mammo import parse_options, synthetic_mammo
from benchmark.errors import BenchmarkError
from benchmark.leaderboard.gallery import save_gallery
from benchmark.registry import get_registry


def _spec(size: int = 64, seed: int = 0, **options: object) -> SimpleNamespace:
    return SimpleNamespace(name="synthetic-mammo", image_size=size, seed=seed, options=options)


def _chest_wall_left(image: np.ndarray, laterality: str) -> np.ndarray:
    return image[:, ::-1] if laterality == "R" else image


def test_generation_is_deterministic_and_prefix_stable() -> None:
    config = SynthConfig()
    a = list(generate(config, 6, seed=5))
    b = list(generate(config, 4, seed=5))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.image, y.image)
        np.testing.assert_array_equal(x.lesion_mask, y.lesion_mask)
    c = next(generate(config, 1, seed=6))
    assert not np.array_equal(a[0].image, c.image)


def test_anatomy_background_pectoral_and_laterality() -> None:
    config = SynthConfig()
    for m in generate(config, 12, seed=1):
        img = m.image
        assert img.dtype == np.float32 and img.shape == (256, 256) and img.min() >= 0 and img.max() <= 1
        assert np.all(img[~m.breast_mask] == 0) and m.breast_mask.mean() > 0.25
        left = _chest_wall_left(img, m.case.laterality)
        assert left[:, :8].mean() > left[:, -8:].mean()  # chest wall on the side the laterality says
        tissue = np.median(left[_chest_wall_left(m.breast_mask, m.case.laterality)])
        corner = left[2:14, 2:14].mean()
        if m.view == "MLO":
            assert corner > tissue + 0.1  # pectoral muscle: bright triangle in the upper chest-wall corner
        # the skin roll-off: intensity falls towards the outline
        edge = m.breast_mask & ~ndimage.binary_erosion(m.breast_mask, iterations=2, border_value=1)
        assert img[edge].mean() < 0.6 * tissue


def test_labels_fraction_and_views() -> None:
    config = SynthConfig(positive_fraction=0.3)
    cases = [draw_case(config, 2, p) for p in range(200)]
    assert sum(c.label for c in cases) == 60  # exact for every prefix, up to one
    assert all(c.views == ("CC", "MLO") for c in cases)
    assert all((c.lesion_type == "none") == (c.label == 0) for c in cases)
    assert {c.density for c in cases} == {"A", "B", "C", "D"}
    mlo_only = [draw_case(SynthConfig(mlo_fraction=1.0), 2, p).views for p in range(20)]
    assert all(v == ("MLO", "MLO") for v in mlo_only)


def test_power_law_field_and_fit() -> None:
    rng = np.random.default_rng(0)
    for beta in (2.6, 3.3):
        patches = [power_law_field(rng, 256, beta)[64:192, 64:192] for _ in range(8)]
        assert fit_beta(np.stack(patches)) == pytest.approx(beta, abs=0.15)


def test_parenchyma_beta_inside_the_breast() -> None:
    config = SynthConfig()
    patches, drawn = [], []
    for p in range(16):
        m = render_view(config, 11, draw_case(config, 11, p), "CC", 2 * p, findings=False)
        depth = ndimage.distance_transform_edt(np.pad(m.breast_mask, 1))[1:-1, 1:-1]
        cy, cx = np.unravel_index(np.argmax(depth), depth.shape)
        assert depth[cy, cx] > 32 * np.sqrt(2)  # the 64 px square lies fully inside the breast
        patches.append(m.image[cy - 32:cy + 32, cx - 32:cx + 32])
        drawn.append(m.beta)
    assert all(2.6 <= b <= 3.3 for b in drawn)
    beta = fit_beta(np.stack(patches))
    print(f"fitted beta {beta:.2f} (drawn mean {np.mean(drawn):.2f})")
    assert 2.5 <= beta <= 3.5


@pytest.mark.parametrize("native,spacing", [(256, 0.8), (512, 0.4)])
def test_mass_size_follows_pixel_spacing(native: int, spacing: float) -> None:
    config = SynthConfig(native_size=native, pixel_spacing_mm=spacing)
    checked = 0
    for m in generate(config, 40, seed=3):
        if "mass" not in m.case.lesion_type:
            continue
        area_mm2 = (m.lesion_mask == MASK_MASS).sum() * spacing ** 2
        diameter = 2 * np.sqrt(area_mm2 / np.pi)
        assert diameter == pytest.approx(m.case.mass_diameter_mm, rel=0.1)
        assert 12 <= m.case.mass_diameter_mm <= 30
        checked += 1
    assert checked >= 5


def test_calcification_clusters() -> None:
    found = 0
    for m in generate(SynthConfig(), 60, seed=4):
        if "calcification" in m.case.lesion_type:
            assert m.case.n_specks >= 5 and (m.lesion_mask == MASK_CALCIFICATION).sum() > 20
            found += 1
        elif m.case.label == 0:
            assert not m.lesion_mask.any()
    assert found >= 5


def test_entry_returns_a_valid_imageset(tmp_path: Path) -> None:
    assert get_registry("datasets").get("synthetic-mammo").obj is synthetic_mammo
    data = synthetic_mammo(_spec(64, count=24), tmp_path)
    assert data.images.shape == data.masks.shape == (24, 1, 64, 64)
    assert data.images.dtype == np.float32 and data.masks.dtype == np.uint8 and data.labels.dtype == np.int64
    assert data.images.min() >= 0 and data.images.max() <= 1 and set(np.unique(data.masks)) <= {0, 1}
    assert set(data.labels) == {0, 1} and data.splits is None
    lesion = data.masks.reshape(24, -1).any(1)
    assert not lesion[data.labels == 0].any() and lesion[data.labels == 1].all()
    assert len(set(data.patients)) == 12 and len(set(data.ids)) == 24
    assert data.meta["pixel_spacing_mm"] == pytest.approx(0.8) and "lesion present" in data.meta["positive"]
    with open(tmp_path / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == list(data.ids) and [int(r["label"]) for r in rows] == list(data.labels)
    assert {"patient", "view", "laterality", "density", "lesion_type", "mass_diameter_mm"} <= set(rows[0])
    for row, label in zip(rows, data.labels):
        assert bool(row["mask"]) == bool(label)
        if row["mask"]:
            native = np.asarray(Image.open(tmp_path / row["mask"]))
            assert native.shape == (256, 256) and set(np.unique(native)) <= {0, MASK_MASS, MASK_CALCIFICATION}
    files = sorted((tmp_path / "dicom").glob("*.dcm"))
    assert len(files) == 24
    ds = pydicom.dcmread(files[0])
    assert ds.Modality == "MG" and ds.BitsStored == 12 and ds.Rows == 256
    assert data.images[:, 0, :, :4].mean() > data.images[:, 0, :, -4:].mean()  # chest wall left after reading


def test_entry_is_deterministic(tmp_path: Path) -> None:
    a = synthetic_mammo(_spec(32, seed=9, count=4), tmp_path / "a")
    b = synthetic_mammo(_spec(32, seed=9, count=4), tmp_path / "b")
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.masks, b.masks)
    for name in a.ids:
        assert (tmp_path / "a" / "dicom" / f"{name}.dcm").read_bytes() == \
            (tmp_path / "b" / "dicom" / f"{name}.dcm").read_bytes()


@pytest.mark.parametrize("options,key", [
    ({"colour": 1}, "colour"), ({"count": 1}, "count"), ({"count": 2.5}, "count"),
    ({"positive_fraction": 1.0}, "positive_fraction"), ({"native_size": "big"}, "native_size"),
    ({"pixel_spacing_mm": 0.1}, "pixel_spacing_mm"), ({"mlo_fraction": -0.1}, "mlo_fraction"),
    ({"mass_diameter_mm": [30, 10]}, "mass_diameter_mm"), ({"mass_diameter_mm": 12}, "mass_diameter_mm"),
    ({"bits_stored": 8}, "bits_stored"), ({"count": True}, "count"),
])
def test_bad_options_name_the_key(options: dict, key: str) -> None:
    with pytest.raises(BenchmarkError, match=f"dataset.options.{key}"):
        parse_options(options, 64)


def test_options_defaults_and_spacing() -> None:
    config, count, bits = parse_options({}, 64)
    assert (config.native_size, config.pixel_spacing_mm, count, bits) == (256, 0.8, 1000, 12)
    config, _, _ = parse_options({"native_size": 1024}, 512)
    assert config.pixel_spacing_mm == pytest.approx(0.2) and config.min_speck_px == pytest.approx(2.4)


def test_gallery(tmp_path: Path) -> None:
    data = synthetic_mammo(_spec(48, count=8), tmp_path / "work")
    path = save_gallery(data, tmp_path / "g" / "gallery.png", n=4)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    save_gallery((data.images[:, 0], data.masks[:, 0], data.labels), tmp_path / "g2.png", n=8)
    assert (tmp_path / "g2.png").stat().st_size > 1000


@pytest.mark.slow
def test_histogram_does_not_give_the_label_away(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = synthetic_mammo(_spec(64, seed=21, count=1000), tmp_path)
    hist = np.stack([np.histogram(x, bins=32, range=(0, 1))[0] / x.size for x in data.images])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    auc = cross_val_score(model, hist, data.labels, scoring="roc_auc",
                          cv=StratifiedKFold(5, shuffle=True, random_state=0)).mean()
    print(f"histogram logistic regression: cross-validated AUC {auc:.3f}")
    assert auc < 0.65


@pytest.mark.slow
def test_speed(tmp_path: Path) -> None:
    start = time.perf_counter()
    for _ in generate(SynthConfig(), 200, seed=0):
        pass
    generated = time.perf_counter() - start
    start = time.perf_counter()
    data = synthetic_mammo(_spec(256, count=200), tmp_path)
    entry = time.perf_counter() - start
    print(f"200 images at 256 px: generate {generated:.2f} s, with DICOM write + read-back {entry:.2f} s "
          f"(x10 for 2,000: {10 * generated:.0f} s / {10 * entry:.0f} s)")
    # what the timed call made: 200 DICOM files read back into 200 images, half positive, each with a lesion mask
    assert len(list((tmp_path / "dicom").glob("*.dcm"))) == 200 and data.images.shape == (200, 1, 256, 256)
    assert data.labels.sum() == 100 and (data.masks.reshape(200, -1).max(1) == data.labels).all()
