"""CBIS-DDSM (TCIA) from a local copy: case description CSVs, official train/test, files matched by series UID."""
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
    require_root,
)
from benchmark.data.imageset import ImageSet
from benchmark.data.record_reader import Record, read_records
from benchmark.errors import BenchmarkError
from benchmark.options import Option
from benchmark.registry import register_dataset

__all__ = ["cbis_ddsm"]

NAME = "cbis-ddsm"
LAYOUT = ("the case description CSVs ({mass,calc}_case_description_{train,test}_set.csv, at the root or one folder "
          "down) and the TCIA DICOM folders under it (any layout: files are found by the CSV path, NBIA metadata.csv "
          "or their SeriesInstanceUID)")
POSITIVE = "pathology MALIGNANT (any abnormality of the image); BENIGN and BENIGN_WITHOUT_CALLBACK negative"
PATHOLOGIES = ("MALIGNANT", "BENIGN", "BENIGN_WITHOUT_CALLBACK")
OWN: dict[str, Option] = {
    "abnormalities": Option(["mass", "calc"], list, "abnormality types read", choices=("mass", "calc")),
    "roi_masks": Option(False, bool, "read the ROI masks as lesion masks")}


class _Finder:
    """CSV 'image file path' -> local DICOM: the path itself, else the series folder (NBIA metadata.csv or headers)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._series: dict[str, list[Path]] | None = None

    def _index(self) -> dict[str, list[Path]]:
        if self._series is None:
            self._series = {}
            nbia = self.root / "metadata.csv"
            if nbia.is_file():
                for row in read_table(nbia, ["Series UID", "File Location"]):
                    folder = self.root / row["File Location"].replace("\\", "/").removeprefix("./")
                    self._series[row["Series UID"]] = sorted(folder.glob("*.dcm"))
            else:  # read only the SeriesInstanceUID of every file, once
                for path in sorted(self.root.rglob("*.dcm")):
                    try:
                        uid = pydicom.dcmread(path, stop_before_pixels=True,
                                              specific_tags=["SeriesInstanceUID"]).get("SeriesInstanceUID")
                    except Exception:
                        continue
                    if uid:
                        self._series.setdefault(str(uid), []).append(path)
        return self._series

    def find(self, listed: str, largest: bool = False) -> Path:
        """The local file for a CSV path; the path under root (reported as missing) when nothing matches."""
        rel = listed.strip().replace("\\", "/")
        for candidate in (self.root / rel, self.root / "CBIS-DDSM" / rel):
            if candidate.is_file():
                return candidate
        parts = rel.split("/")
        files = self._index().get(parts[-2], []) if len(parts) >= 2 else []
        if len(files) == 1 or (files and largest):  # a crop+mask series: the full-size mask is the larger file
            return max(files, key=lambda p: p.stat().st_size)
        return self.root / rel


def _label_files(root: Path, kinds: list[str]) -> list[tuple[Path, str]]:
    found = []
    for kind in kinds:
        for split in ("train", "test"):
            name = f"{kind}_case_description_{split}_set.csv"
            hits = [root / name] if (root / name).is_file() else sorted(root.glob(f"*/{name}"))
            found += [(hits[0], split)] if hits else []
    if not found:
        raise BenchmarkError(f"{root / f'{kinds[0]}_case_description_train_set.csv'}: label file not found under "
                             f"dataset.options.root; {NAME} expects {LAYOUT}")
    return found


@register_dataset(NAME, masks=("roi_masks", OWN["roi_masks"].default),  # lesion masks iff roi_masks
                  options=folder_options(OWN), check_options=folder_check(NAME, OWN, LAYOUT))
def cbis_ddsm(spec: Any, workdir: Path) -> ImageSet:
    """CBIS-DDSM, local copy; positive = pathology MALIGNANT; official train/test, val carved by patient."""
    options = parse_options(NAME, spec.options, OWN)
    kinds = options["abnormalities"]
    if not kinds or not set(kinds) <= {"mass", "calc"}:
        raise BenchmarkError(f"dataset.options.abnormalities = {kinds!r} is invalid for {NAME}: use a non-empty "
                             "subset of [\"mass\", \"calc\"]")
    root = require_root(NAME, options, LAYOUT)
    finder, by_image = _Finder(root), {}
    files = _label_files(root, kinds)
    for table, split in files:
        needed = ["patient_id", "pathology", "image file path"] + (["ROI mask file path"] if options["roi_masks"]
                                                                   else [])
        for row in read_table(table, needed):
            if row["pathology"].upper() not in PATHOLOGIES:
                raise bad_value(table, row, "pathology", " or ".join(PATHOLOGIES))
            listed = row["image file path"].replace("\\", "/")
            key = listed.split("/")[0]
            record = by_image.get(key)
            if record is None:
                record = by_image[key] = Record(finder.find(listed), 0, row["patient_id"], key, split)
            record.label = max(record.label or 0, int(row["pathology"].upper() == "MALIGNANT"))
            if options["roi_masks"] and row.get("ROI mask file path"):  # one per abnormality: masks are united
                record.mask_files.append(finder.find(row["ROI mask file path"], largest=True))
    records = sorted(by_image.values(), key=lambda r: r.image)
    meta = {"source": "CBIS-DDSM " + ", ".join(p.name for p, _ in files), "positive": POSITIVE,
            "masks": "ROI masks (union of the image's abnormalities)" if options["roi_masks"] else "none"}
    return read_records(NAME, spec, records, options, meta)
