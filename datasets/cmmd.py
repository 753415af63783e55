"""CMMD (TCIA) from a local copy: clinical labels per breast, laterality from each DICOM's ImageLaterality tag."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.data.dataset_folder import (
    LINE,
    bad_value,
    folder_check,
    folder_options,
    parse_options,
    read_table,
    require_root,
)
from benchmark.data.imageset import ImageSet
from benchmark.data.record_reader import Record, read_records
from benchmark.errors import BenchmarkError
from benchmark.registry import register_dataset

__all__ = ["cmmd"]

NAME = "cmmd"
CLINICAL = "CMMD_clinicaldata_revision"
COLUMNS = ["ID1", "LeftRight", "classification"]
LAYOUT = (f"{CLINICAL}.csv (a CSV export of the .xlsx; the .xlsx itself needs openpyxl) with ID1, LeftRight, "
          "classification, and the DICOMs as NBIA metadata.csv (Subject ID, File Location) or CMMD/<ID1>/.../*.dcm")
POSITIVE = "classification Malignant for the imaged breast (laterality from ImageLaterality); Benign negative"
LABELS = {"malignant": 1, "benign": 0}


def _read_xlsx(path: Path) -> list[dict[str, str]]:
    """The first sheet of the clinical .xlsx as rows of strings (needs openpyxl)."""
    try:
        import openpyxl
    except ImportError:
        raise BenchmarkError(f"{path}: reading .xlsx needs openpyxl (pip install openpyxl); or save the sheet as "
                             f"{CLINICAL}.csv next to it") from None
    try:
        sheet = openpyxl.load_workbook(path, read_only=True, data_only=True).worksheets[0]
        rows = [["" if v is None else str(v).strip() for v in row] for row in sheet.iter_rows(values_only=True)]
    except Exception as exc:
        raise BenchmarkError(f"{path}: unreadable .xlsx ({type(exc).__name__})") from None
    header = rows[0] if rows else []
    for column in COLUMNS:
        if column not in header:
            raise BenchmarkError(f"{path}: column '{column}' missing (found {', '.join(h for h in header if h)})")
    return [{**dict(zip(header, row)), LINE: str(i + 2)} for i, row in enumerate(rows[1:]) if any(row)]


def _clinical(root: Path) -> tuple[Path, dict[tuple[str, str], int]]:
    """(ID1, L or R) -> 1 malignant, 0 benign, from the CSV export or the .xlsx."""
    csv_path, xlsx_path = root / f"{CLINICAL}.csv", root / f"{CLINICAL}.xlsx"
    if csv_path.is_file():
        path, rows = csv_path, read_table(csv_path, COLUMNS, delimiter=None)
    elif xlsx_path.is_file():
        path, rows = xlsx_path, _read_xlsx(xlsx_path)
    else:
        raise BenchmarkError(f"{csv_path}: label file not found under dataset.options.root; {NAME} expects {LAYOUT}")
    labels: dict[tuple[str, str], int] = {}
    for row in rows:
        side, label = row["LeftRight"].upper()[:1], LABELS.get(row["classification"].lower())
        if side not in ("L", "R"):
            raise bad_value(path, row, "LeftRight", "L or R")
        if label is None:
            raise bad_value(path, row, "classification", "Benign or Malignant")
        key = (row["ID1"], side)
        labels[key] = max(labels.get(key, 0), label)
    return path, labels


def _files(root: Path, subjects: set[str]) -> dict[str, list[Path]]:
    """ID1 -> its DICOM files, from NBIA metadata.csv when present, else from CMMD/<ID1>/ (or <ID1>/) folders."""
    out: dict[str, list[Path]] = {}
    nbia = root / "metadata.csv"
    if nbia.is_file():
        for row in read_table(nbia, ["Subject ID", "File Location"]):
            if row["Subject ID"] in subjects:
                folder = root / row["File Location"].replace("\\", "/").removeprefix("./")
                out.setdefault(row["Subject ID"], []).extend(sorted(folder.glob("*.dcm")))
        return out
    for subject in sorted(subjects):
        for folder in (root / "CMMD" / subject, root / subject):
            if folder.is_dir():
                out[subject] = sorted(folder.rglob("*.dcm"))
                break
    return out


@register_dataset(NAME, masks=False,
                  options=folder_options({}), check_options=folder_check(NAME, {}, LAYOUT))
def cmmd(spec: Any, workdir: Path) -> ImageSet:
    """CMMD, local copy; positive = classification Malignant for the breast shown (ImageLaterality)."""
    options = parse_options(NAME, spec.options, {})
    root = require_root(NAME, options, LAYOUT)
    table, labels = _clinical(root)
    subjects = {subject for subject, _ in labels}
    files = _files(root, subjects)
    records = []
    for subject in sorted(files):
        def label_of(info: dict[str, Any], subject: str = subject) -> int | None:
            return labels.get((subject, str(info.get("laterality", "")).upper()[:1]))
        for path in files[subject]:
            records.append(Record(path, None, subject, str(path.relative_to(root)), label_from_info=label_of))
    meta = {"source": f"CMMD {table.name}", "positive": POSITIVE,
            "subjects_without_files": len(subjects - set(files)),
            "note": "images of a breast without a clinical row have no label and are excluded after reading"}
    return read_records(NAME, spec, records, options, meta)
