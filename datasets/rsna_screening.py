"""RSNA Screening Mammography (Kaggle 2022) from a local copy: train.csv and train_images/<patient>/<image>.dcm."""
from __future__ import annotations

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
from benchmark.options import Option
from benchmark.registry import register_dataset

__all__ = ["rsna_screening"]

NAME = "rsna-screening"
LAYOUT = "train.csv (patient_id, image_id, cancer) and train_images/<patient_id>/<image_id>.dcm (the Kaggle files)"
POSITIVE = "cancer == 1 in train.csv (about 2% of images); cancer == 0 negative"
OWN: dict[str, Option] = {"labels": Option("train.csv", str, "the label CSV, relative to root"),
                          "images": Option("train_images", str, "the DICOM folder, relative to root")}


@register_dataset(NAME, masks=False,
                  options=folder_options(OWN), check_options=folder_check(NAME, OWN, LAYOUT))
def rsna_screening(spec: Any, workdir: Path) -> ImageSet:
    """RSNA Screening Mammography (Kaggle 2022), local copy; positive = cancer == 1; split by patient."""
    options = parse_options(NAME, spec.options, OWN)
    root = require_root(NAME, options, LAYOUT)
    table = require_file(root, [options["labels"]], NAME, LAYOUT)
    records = []
    for row in read_table(table, ["patient_id", "image_id", "cancer"]):
        if row["cancer"] not in ("0", "1"):
            raise bad_value(table, row, "cancer", "0 or 1")
        path = root / options["images"] / row["patient_id"] / f"{row['image_id']}.dcm"
        records.append(Record(path, int(row["cancer"]), row["patient_id"], row["image_id"]))
    meta = {"source": "RSNA Screening Mammography (Kaggle 2022), train.csv", "positive": POSITIVE}
    return read_records(NAME, spec, records, options, meta)
