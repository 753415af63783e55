"""The built-in synthetic mammography data set: generated, written as DICOM MG, read back through the DICOM path."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmark.data.dicom_io import SyntheticDicomMeta, quantize, read_mammogram, transform_mask, write_mammogram
from benchmark.data.imageset import ImageSet
from benchmark.data.phantom import MASK_CALCIFICATION, SynthConfig, generate
from benchmark.errors import BenchmarkError
from benchmark.options import Option, read_dataset_options
from benchmark.registry import register_dataset

__all__ = ["OPTIONS", "parse_options", "synthetic_mammo"]

FIELD_OF_VIEW_MM = 204.8  # default native_size * pixel_spacing_mm: room for a 9-14 cm deep compressed breast
POSITIVE = "lesion present (mass and/or calcification cluster)"
OPTIONS: dict[str, Option] = {
    "count": Option(1000, int, "images (two views per synthetic patient)", low=2, high=10_000_000),
    "positive_fraction": Option(0.5, float, "share of positive images", above=0, below=1),
    "native_size": Option(256, int, "square side of the written DICOM, pixels", low=128, high=4096),
    "pixel_spacing_mm": Option(None, float, f"mm per native pixel; native_size * spacing within [150, 420] mm "
                                            f"(default {FIELD_OF_VIEW_MM} / native_size)", low=0.05, high=1.6),
    "mlo_fraction": Option(0.5, float, "share of MLO views (0.5: every patient has a CC and an MLO view)",
                           low=0, high=1),
    "mass_diameter_mm": Option([12.0, 30.0], list, "[min, max] mass diameter, mm", low=5, high=50, item=float,
                               length=2),
    "bits_stored": Option(12, int, "BitsStored of the written DICOM", low=10, high=16),
}


def _bad(key: str, value: Any, reason: str) -> BenchmarkError:
    return BenchmarkError(f"dataset.options.{key} = {value!r} is invalid for synthetic-mammo: {reason}")


def parse_options(options: dict[str, Any], image_size: int) -> tuple[SynthConfig, int, int]:
    """Validate dataset.options into a generator config, the image count and BitsStored."""
    opt = read_dataset_options("synthetic-mammo", options, OPTIONS)
    native = opt["native_size"]
    spacing = FIELD_OF_VIEW_MM / native if opt["pixel_spacing_mm"] is None else opt["pixel_spacing_mm"]
    if not 150 <= native * spacing <= 420:
        raise _bad("pixel_spacing_mm", opt["pixel_spacing_mm"], f"native_size * spacing must lie in [150, 420] mm, "
                                                                f"got {native * spacing:g}")
    lo, hi = opt["mass_diameter_mm"]
    if lo > hi:
        raise _bad("mass_diameter_mm", options["mass_diameter_mm"], "expected [min, max] with min <= max")
    # Specks must stay at least one output pixel wide after the breast (most of the field) is resized.
    min_speck = max(1.5, 1.2 * native / image_size)
    config = SynthConfig(native, float(spacing), float(opt["positive_fraction"]), float(opt["mlo_fraction"]),
                         (float(lo), float(hi)), min_speck)
    return config, opt["count"], opt["bits_stored"]


@register_dataset("synthetic-mammo", masks=True, options=OPTIONS,
                  check_options=lambda spec: parse_options(dict(spec.options or {}), spec.image_size))
def synthetic_mammo(spec: Any, workdir: Path) -> ImageSet:
    """Procedural synthetic mammograms (1/f^beta parenchyma, masses, calcifications) written as DICOM MG."""
    size = int(spec.image_size)
    if size < 16:
        raise BenchmarkError(f"image_size {size} is too small for synthetic-mammo; use 16 or more")
    config, count, bits = parse_options(dict(spec.options or {}), size)
    workdir = Path(workdir)
    for folder in ("dicom", "masks"):
        (workdir / folder).mkdir(parents=True, exist_ok=True)
    images = np.zeros((count, 1, size, size), np.float32)
    masks = np.zeros((count, 1, size, size), np.uint8)
    rows, salt = [], f"{config!r} bits={bits}"
    for m in generate(config, count, int(spec.seed)):
        i, case = m.index, m.case
        image_id, patient = f"syn-{i:06d}", f"synp-{case.patient:06d}"
        path = workdir / "dicom" / f"{image_id}.dcm"
        meta = SyntheticDicomMeta(image_id, case.patient, m.view, case.laterality, config.pixel_spacing_mm,
                                  bits, int(spec.seed), uid_salt=salt)
        write_mammogram(path, quantize(m.image, bits), meta)
        arr, info = read_mammogram(path, size)  # always through the DICOM path, as real data would go
        images[i, 0] = arr
        masks[i, 0] = transform_mask(m.lesion_mask, info) > 0
        mask_file = f"masks/{image_id}.png" if m.lesion_mask.any() else ""
        if mask_file:  # native-resolution label map: 1 mass, 2 calcification cluster
            Image.fromarray(m.lesion_mask).save(workdir / mask_file)
        rows.append({"id": image_id, "patient": patient, "label": case.label, "view": m.view,
                     "laterality": case.laterality, "density": case.density, "lesion_type": case.lesion_type,
                     "mass_margin": case.mass_margin, "mass_diameter_mm": round(case.mass_diameter_mm, 2),
                     "n_calcifications": case.n_specks if "calcification" in case.lesion_type else 0,
                     "beta": round(m.beta, 3), "file": f"dicom/{image_id}.dcm", "mask": mask_file})
    with open(workdir / "labels.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    ids = np.array([r["id"] for r in rows])
    labels = np.array([r["label"] for r in rows], np.int64)
    meta = {"positive": POSITIVE, "pixel_spacing_mm": config.pixel_spacing_mm, "native_size": config.native_size,
            "field_of_view_mm": round(config.native_size * config.pixel_spacing_mm, 2),
            "bits_stored": bits, "mass_diameter_mm": list(config.mass_diameter_mm),
            "calcification_min_speck_px": round(config.min_speck_px, 3),
            "native_masks": f"masks/<id>.png (1 mass, {MASK_CALCIFICATION} calcification cluster; native pixels)",
            "synthetic": True, "positives": int(labels.sum()), "images": count}
    return ImageSet(images, labels, masks, ids, np.array([r["patient"] for r in rows]), None, meta)
