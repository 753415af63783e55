"""Any folder of mammography DICOMs with a label CSV: choose the file, label, patient and split columns."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom

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

__all__ = ["dicom_folder"]

NAME = "dicom-folder"
LAYOUT = ("a label CSV (dataset.options.labels, relative to root) whose file_column holds DICOM paths relative "
          "to root and whose label_column holds labels")
OWN: dict[str, Option] = {
    "labels": Option(None, str, "the label CSV, relative to root"),
    "file_column": Option("file", str, "CSV column with each DICOM's path, relative to root"),
    "label_column": Option("label", str, "CSV column with the label"),
    "patient_column": Option(None, str, "CSV column with the patient id (default: one patient per image)"),
    "split_column": Option(None, str, "CSV column with train/val/test (default: split by patient, seeded)"),
    "positive_values": Option(["1"], list, "label values that mean positive")}
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "test": "test", "testing": "test"}


def _dicom_patient(path: Path) -> str:
    """The file's PatientID (only ever hashed) or, when it has none, the file itself: one image per patient."""
    try:
        value = str(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientID"]).get("PatientID", ""))
    except Exception:
        value = ""
    return f"dicom:{value}" if value.strip() else f"file:{path}"


@register_dataset(NAME, masks=False,
                  options=folder_options(OWN), check_options=folder_check(NAME, OWN, LAYOUT, required=("labels",)))
def dicom_folder(spec: Any, workdir: Path) -> ImageSet:
    """A local folder of DICOM mammograms with a label CSV; positive = label in positive_values."""
    options = parse_options(NAME, spec.options, OWN)
    root = require_root(NAME, options, LAYOUT)
    if not options["labels"]:
        raise BenchmarkError(f"dataset.options.labels is missing: {NAME} expects {LAYOUT}")
    table = require_file(root, [options["labels"]], NAME, LAYOUT)
    file_col, label_col = options["file_column"], options["label_column"]
    patient_col, split_col = options["patient_column"], options["split_column"]
    positive = {str(v).strip().lower() for v in options["positive_values"]}
    rows = read_table(table, [c for c in (file_col, label_col, patient_col, split_col) if c], delimiter=None)
    records, unlabelled = [], 0
    for row in rows:
        if not row[label_col]:
            unlabelled += 1
            continue
        if not row[file_col]:
            raise bad_value(table, row, file_col, "a DICOM path relative to dataset.options.root")
        path = root / row[file_col]
        split = None
        if split_col:
            split = SPLIT_NAMES.get(row[split_col].lower())
            if split is None:
                raise bad_value(table, row, split_col, "train, val or test (or training, validation, testing)")
        patient = f"csv:{row[patient_col]}" if patient_col and row[patient_col] else _dicom_patient(path)
        records.append(Record(path, int(row[label_col].lower() in positive), patient, row[file_col], split))
    meta = {"source": f"dicom-folder {table.name}",
            "positive": f"{label_col} in {sorted(positive)}; any other non-empty value negative",
            "patients_from": f"column {patient_col}" if patient_col else "DICOM PatientID (hashed)",
            "unlabelled_rows": unlabelled}
    return read_records(NAME, spec, records, options, meta)
