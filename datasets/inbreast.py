"""INbreast from a local copy: INbreast.csv (';'-separated) and AllDICOMs/; Bi-Rads 4a-6 positive, 1-2 negative."""
from __future__ import annotations

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

__all__ = ["inbreast"]

NAME = "inbreast"
LAYOUT = ("INbreast.csv (';'-separated; File Name, Bi-Rads) and AllDICOMs/<File Name>_<patient hash>_MG_<R|L>_"
          "<CC|MLO>_ANON.dcm")
BIRADS3 = ("exclude", "negative", "positive")
OWN: dict[str, Option] = {"birads3": Option("exclude", str, "what Bi-Rads 3 images count as", choices=BIRADS3)}


def _label(category: str, birads3: str) -> int | None:
    """1 for Bi-Rads 4a-6, 0 for 1-2, Bi-Rads 3 as chosen; -1 when the value is not a Bi-Rads category."""
    text = category.strip().lower()
    if text[:1] in ("4", "5", "6") and text[1:] in ("", "a", "b", "c"):
        return 1
    if text in ("1", "2"):
        return 0
    if text == "3":
        return {"exclude": None, "negative": 0, "positive": 1}[birads3]
    return -1


def _dicoms(folder: Path) -> dict[str, tuple[Path, str]]:
    """File Name -> (DICOM path, patient hash taken from the file name)."""
    out = {}
    for path in sorted(folder.glob("*.dcm")):
        parts = path.stem.split("_")
        out[parts[0]] = (path, parts[1] if len(parts) > 2 else "")
    return out


@register_dataset(NAME, masks=False,  # AllXML contours are not read
                  options=folder_options(OWN), check_options=folder_check(NAME, OWN, LAYOUT))
def inbreast(spec: Any, workdir: Path) -> ImageSet:
    """INbreast, local copy; positive = Bi-Rads 4a-6, negative = 1-2, Bi-Rads 3 excluded by default."""
    options = parse_options(NAME, spec.options, OWN)
    if options["birads3"] not in BIRADS3:
        raise BenchmarkError(f"dataset.options.birads3 = {options['birads3']!r} is invalid for {NAME}: use one of "
                             f"{', '.join(BIRADS3)}")
    root = require_root(NAME, options, LAYOUT)
    table = require_file(root, ["INbreast.csv"], NAME, LAYOUT)
    files = _dicoms(root / "AllDICOMs")
    records, excluded = [], Counter()
    for row in read_table(table, ["File Name", "Bi-Rads"], delimiter=None):
        name = row["File Name"].removesuffix(".0")  # spreadsheet exports may write the number as a float
        if not name:
            continue
        label = _label(row["Bi-Rads"], options["birads3"])
        if label == -1:
            raise bad_value(table, row, "Bi-Rads", "1, 2, 3, 4a, 4b, 4c, 5 or 6")
        if label is None:
            excluded[f"Bi-Rads {row['Bi-Rads']}"] += 1
            continue
        path, patient = files.get(name, (root / "AllDICOMs" / f"{name}.dcm", ""))
        # The hash in the file name groups a woman's images; the CSV's Patient ID is often blank or 'removed'.
        records.append(Record(path, label, f"hash:{patient}" if patient else f"file:{name}", name))
    meta = {"source": "INbreast INbreast.csv",
            "positive": "Bi-Rads 4a, 4b, 4c, 5, 6; negative: Bi-Rads 1, 2; Bi-Rads 3: " + options["birads3"]
                        + ("d" if options["birads3"] == "exclude" else ""),
            "excluded_rows": dict(sorted(excluded.items())), "masks": "none (AllXML contours are not read)",
            "patients_from": "the patient hash in the DICOM file name"}
    return read_records(NAME, spec, records, options, meta)
