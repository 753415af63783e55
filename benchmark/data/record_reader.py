"""Turn an adapter's labelled file list into an ImageSet: limit, cached reads, masks, skip-bad, official splits."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from tqdm.auto import tqdm

from benchmark.data.dataset_folder import anon_id
from benchmark.data.dicom_io import reason, transform_mask
from benchmark.data.imageset import SPLITS, ImageSet, unique_in_order
from benchmark.data.preprocess_cache import cached_read
from benchmark.errors import BenchmarkError

__all__ = ["Record", "limit_records", "official_splits", "read_records"]


@dataclass
class Record:
    """One image to read: file, label (1 positive, 0 negative), original ids (hashed on the way in) and extras."""

    path: Path
    label: int | None
    patient: str
    image: str
    split: str | None = None  # official split ("train", "val" or "test"), None when the set has none
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)  # (xmin, ymin, xmax, ymax), native px
    mask_files: list[Path] = field(default_factory=list)  # native-resolution mask DICOMs (non-zero = lesion)
    label_from_info: Callable[[dict[str, Any]], int | None] | None = None  # label known only after reading


def limit_records(records: list[Record], limit: int | None, seed: int) -> list[Record]:
    """At most limit records, taken as whole patients in a seeded order that keeps the classes in proportion."""
    if limit is None or len(records) <= limit:
        return records
    by_patient: dict[str, list[Record]] = {}
    for r in records:
        by_patient.setdefault(r.patient, []).append(r)
    names = sorted(by_patient)
    positive = np.array([any(r.label == 1 for r in by_patient[p]) for p in names])
    rng = np.random.default_rng(seed)
    rank = np.empty(len(names))
    for group in (np.flatnonzero(positive), np.flatnonzero(~positive)):
        rank[rng.permutation(group)] = (np.arange(len(group)) + rng.random()) / max(len(group), 1)
    keep, count = set(), 0
    for i in np.argsort(rank, kind="stable"):
        if count >= limit:
            break
        keep.add(names[i])
        count += len(by_patient[names[i]])
    return [r for r in records if r.patient in keep]


def _native_mask(record: Record, info: dict[str, Any]) -> np.ndarray | None:
    """The record's lesion mask at native resolution, or None when it has none (or it does not fit the image)."""
    shape = tuple(info["original_shape"])
    mask = np.zeros(shape, np.uint8)
    for x0, y0, x1, y1 in record.boxes:
        mask[max(0, int(np.floor(y0))):max(0, int(np.ceil(y1))), max(0, int(np.floor(x0))):max(0, int(np.ceil(x1)))] = 1
    for path in record.mask_files:
        try:
            pixels = pydicom.dcmread(path).pixel_array
        except Exception:
            continue
        if pixels.shape == shape:  # a mask that does not fit the image (e.g. a crop listed as mask) is ignored
            mask[pixels > 0] = 1
    return mask if mask.any() else None


def _file_token(name: str, salt: str, path: Path, root: str | None) -> str:
    """The anonymous token of a file: its path relative to the data set root (when under it), hashed."""
    rel = Path(path)
    if root:
        try:
            rel = Path(path).relative_to(Path(root))
        except ValueError:
            pass
    return anon_id(name, salt, "file", rel.as_posix())


def _read_one(record: Record, size: int,
              modalities: tuple[str, ...]) -> tuple[np.ndarray, int | None, np.ndarray | None]:
    """One record's image, label and transformed lesion mask (None without one)."""
    arr, info = cached_read(record.path, size, allowed_modalities=modalities)
    label = record.label_from_info(info) if record.label_from_info is not None else record.label
    if label is None:
        return arr, None, None
    native = _native_mask(record, info) if (record.boxes or record.mask_files) else None
    return arr, int(label), (transform_mask(native, info) > 0 if native is not None else None)


def read_records(name: str, spec: Any, records: list[Record], options: dict[str, Any],
                 meta: dict[str, Any]) -> ImageSet:
    """Read every record through the preprocessing cache; bad files are skipped and listed or stop the run.

    A skip entry is {"file": anonymous token, "reason": one line}: neither names the path (file names carry ids).
    """
    size, skip_bad = int(spec.image_size), bool(getattr(spec, "skip_bad", True))
    first: dict[str, Record] = {}
    for record in records:  # an image listed twice is read once
        first.setdefault(record.image, record)
    unique = list(first.values())
    duplicates = len(records) - len(unique)
    records = limit_records(unique, options.get("limit"), int(spec.seed))
    images = np.zeros((len(records), 1, size, size), np.float32)
    masks = np.zeros((len(records), 1, size, size), np.uint8)
    kept: list[tuple[Record, int]] = []
    skipped: list[dict[str, str]] = []
    unlabelled = 0
    modalities = tuple(options.get("modalities") or ("MG",))
    salt = str(options.get("id_salt") or "")
    root = options.get("root")
    for record in tqdm(records, desc=f"read {name}", unit="img", disable=None, leave=False):
        try:
            arr, label, mask = _read_one(record, size, modalities)
        except Exception as exc:
            entry = {"file": _file_token(name, salt, record.path, root), "reason": reason(exc, Path(record.path))}
            if not skip_bad:
                raise BenchmarkError(f"data set {name}: file {entry['file']} (anonymised path): {entry['reason']}; "
                                     "set dataset.skip_bad: true to skip and list such files") from None
            skipped.append(entry)
            continue
        if label is None:
            unlabelled += 1
            continue
        row = len(kept)
        images[row, 0] = arr
        if mask is not None:
            masks[row, 0] = mask
        kept.append((record, label))
    if not kept:
        raise BenchmarkError(f"data set {name}: no readable images ({len(skipped)} skipped"
                             f"{', e.g. file ' + skipped[0]['file'] + ': ' + skipped[0]['reason'] if skipped else ''})")
    labels = np.array([label for _, label in kept], np.int64)
    patients = np.array([anon_id(name, salt, "patient", r.patient) for r, _ in kept])
    ids = np.array([anon_id(name, salt, "image", r.image) for r, _ in kept])
    splits, split_meta = official_splits([r.split for r, _ in kept], patients, labels, spec)
    n = len(kept)
    meta = {**meta, **split_meta, "images": n, "positives": int(labels.sum()), "patients": len(set(patients)),
            "skipped": skipped,
            "ids": "HMAC-SHA256 under the store's secret id key of (data set name, options.id_salt, original id)"}
    if unlabelled:
        meta["excluded_after_reading"] = unlabelled
    if duplicates:
        meta["duplicate_rows"] = duplicates
    if options.get("limit") is not None:
        meta["limit"] = int(options["limit"])
    if n < len(records):  # copies, so that the arrays of the skipped rows are freed
        images, masks = images[:n].copy(), masks[:n].copy()
    return ImageSet(images, labels, masks, ids, patients, splits, meta)


def official_splits(splits: list[str | None], patients: np.ndarray, labels: np.ndarray,
                    spec: Any) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Official train/test as given, val carved out of train by patient; a patient never spans two splits."""
    if all(s is None for s in splits):
        return None, {"split_source": "engine (random by patient, dataset.split fractions)"}
    if any(s not in SPLITS for s in splits):
        raise BenchmarkError("official split values must be train, val or test for every image")
    out = np.array(splits, dtype="<U5")
    # A patient with images in both official parts goes wholly to test: nothing of a test patient is trained on.
    in_test = set(patients[out == "test"])
    moved = (out != "test") & np.isin(patients, list(in_test))
    out[moved] = "test"
    meta: dict[str, Any] = {"split_source": "official", "moved_to_test": int(moved.sum())}
    if "val" not in set(out.tolist()):
        train_share, val_share = float(spec.split[0]), float(spec.split[1])
        fraction = val_share / (train_share + val_share)
        train = out == "train"
        uniq, inverse = unique_in_order(patients[train])
        positive = np.zeros(len(uniq), bool)
        np.logical_or.at(positive, inverse, labels[train] == 1)
        rng = np.random.default_rng(int(spec.seed))
        to_val = np.zeros(len(uniq), bool)
        for group in (np.flatnonzero(positive), np.flatnonzero(~positive)):
            to_val[rng.permutation(group)[:round(fraction * len(group))]] = True
        rows = np.flatnonzero(train)
        out[rows[to_val[inverse]]] = "val"
        meta["split_source"] = f"official train/test; val = {fraction:.3g} of train patients (seeded)"
    return out, meta
