"""VinDr-Mammo (PhysioNet) from a local copy: breast-level BI-RADS labels, official split, finding boxes as masks."""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from benchmark.data.dataset_folder import (
    bad_value,
    folder_check,
    folder_options,
    parse_options,
    read_table,
    require_file,
    require_root,
)
from benchmark.data.imageset import ImageSet
from benchmark.data.record_reader import Record, read_records
from benchmark.errors import BenchmarkError
from benchmark.options import Option
from benchmark.registry import register_dataset

__all__ = ["birads", "vindr_mammo"]

NAME = "vindr-mammo"
LAYOUT = ("breast-level_annotations.csv (study_id, image_id, breast_birads, split), optionally "
          "finding_annotations.csv (boxes), and images/<study_id>/<image_id>.dicom")
OWN: dict[str, Option] = {
    "positive_birads": Option([5], list, "breast BI-RADS categories counted positive"),
    "negative_birads": Option([1], list, "breast BI-RADS categories counted negative"),
    "masks": Option(True, bool, "finding boxes as lesion masks (needs finding_annotations.csv)")}
SPLITS = {"training": "train", "train": "train", "test": "test"}


def birads(value: str) -> int | None:
    """'BI-RADS 4' (or '4') as 4; None when it is not a BI-RADS category 0-6."""
    text = value.upper().replace("BI-RADS", "").replace("BIRADS", "").strip()
    return int(text) if text.isdigit() and 0 <= int(text) <= 6 else None


def _categories(name: str, key: str, value: Any) -> set[int]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 6
                                              for v in value):
        raise BenchmarkError(f"dataset.options.{key} = {value!r} is invalid for {name}: expected a list of BI-RADS "
                             "categories such as [4, 5]")
    return set(value)


def _boxes(path: Path, wanted: set[str]) -> dict[str, list[tuple[float, float, float, float]]]:
    """image_id -> lesion boxes from finding_annotations.csv (rows without coordinates carry no finding)."""
    out: dict[str, list[tuple[float, float, float, float]]] = {}
    for row in read_table(path, ["image_id", "xmin", "ymin", "xmax", "ymax"]):
        if row["image_id"] not in wanted:
            continue
        try:
            box = tuple(float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError:
            continue
        if all(math.isfinite(v) for v in box) and box[2] > box[0] and box[3] > box[1]:
            out.setdefault(row["image_id"], []).append(box)
    return out


@register_dataset(NAME, masks=("masks", OWN["masks"].default),  # finding boxes iff masks (and the CSV)
                  options=folder_options(OWN), check_options=folder_check(NAME, OWN, LAYOUT))
def vindr_mammo(spec: Any, workdir: Path) -> ImageSet:
    """VinDr-Mammo, local copy; positive = breast BI-RADS in positive_birads (default 5), negative BI-RADS 1."""
    options = parse_options(NAME, spec.options, OWN)
    positive = _categories(NAME, "positive_birads", options["positive_birads"])
    negative = _categories(NAME, "negative_birads", options["negative_birads"])
    if positive & negative or not positive or not negative:
        raise BenchmarkError(f"dataset.options.positive_birads {sorted(positive)} and negative_birads "
                             f"{sorted(negative)} must be non-empty and must not overlap ({NAME})")
    root = require_root(NAME, options, LAYOUT)
    table = require_file(root, ["breast-level_annotations.csv"], NAME, LAYOUT)
    rows = read_table(table, ["study_id", "image_id", "breast_birads", "split"])
    records, excluded = [], Counter()
    for row in rows:
        category = birads(row["breast_birads"])
        if category is None:
            raise bad_value(table, row, "breast_birads", "'BI-RADS 1' ... 'BI-RADS 5'")
        split = SPLITS.get(row["split"].lower())
        if split is None:
            raise bad_value(table, row, "split", "training or test")
        if category not in positive | negative:
            excluded[f"BI-RADS {category}"] += 1
            continue
        path = root / "images" / row["study_id"] / f"{row['image_id']}.dicom"
        if not path.exists() and path.with_suffix(".dcm").exists():
            path = path.with_suffix(".dcm")
        records.append(Record(path, int(category in positive), row["study_id"], row["image_id"], split))
    findings = root / "finding_annotations.csv"
    if options["masks"] and findings.is_file():
        boxes = _boxes(findings, {r.image for r in records})
        for record in records:
            record.boxes = boxes.get(record.image, [])
    meta = {"source": "VinDr-Mammo breast-level_annotations.csv",
            "positive": f"breast BI-RADS in {sorted(positive)}; negative: BI-RADS in {sorted(negative)}; "
                        "other categories excluded",
            "positive_birads": sorted(positive), "negative_birads": sorted(negative),
            "excluded_rows": dict(sorted(excluded.items())),
            "masks": "finding boxes (rectangles)" if options["masks"] and findings.is_file() else "none",
            "patients_from": "study_id (VinDr-Mammo publishes no patient id)"}
    return read_records(NAME, spec, records, options, meta)
