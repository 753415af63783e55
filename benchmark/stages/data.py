"""Stage `data`: build the data set through its entry, split it by patient, save arrays once."""
from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from benchmark.config import DatasetSpec
from benchmark.data import preprocess_cache
from benchmark.data.dataset_folder import id_key, using_id_key
from benchmark.data.imageset import SPLITS, ImageSet, unique_in_order
from benchmark.errors import BenchmarkError
from benchmark.execution.artifacts import DATA
from benchmark.registry import get_component
from benchmark.stages.context import StageContext

__all__ = ["check_patient_splits", "patient_split", "run"]


def patient_split(patients: np.ndarray, labels: np.ndarray, fractions: tuple[float, float, float],
                  seed: int) -> np.ndarray:
    """Assign train/val/test per patient (no patient in two splits), stratified by whether a patient is positive."""
    out = np.empty(len(patients), dtype="<U5")
    rng = np.random.default_rng(seed)
    uniq, inverse = unique_in_order(patients)
    positive = np.zeros(len(uniq), dtype=bool)
    np.logical_or.at(positive, inverse, labels == 1)
    patient_split_of = np.empty(len(uniq), dtype="<U5")
    for group in (np.flatnonzero(positive), np.flatnonzero(~positive)):
        order = rng.permutation(group)
        cuts = np.round(np.cumsum(fractions)[:2] * len(order)).astype(int)
        for name, part in zip(SPLITS, np.split(order, cuts)):
            patient_split_of[part] = name
    out[:] = patient_split_of[inverse]
    return out


def check_patient_splits(name: str, patients: np.ndarray, splits: np.ndarray) -> None:
    """Raise when a patient has images in two splits (a leak from training into evaluation)."""
    seen: dict[str, str] = {}
    for patient, split in zip(patients.tolist(), splits.tolist()):
        if seen.setdefault(patient, split) != split:
            raise BenchmarkError(f"data set {name}: a patient has images in splits '{seen[patient]}' and "
                                 f"'{split}'; splits must be by patient")


def run(params: dict, inputs: dict[str, Path], out: Path, ctx: StageContext) -> None:
    """Make the data set artifact: imageset.npz plus summary.json."""
    spec = DatasetSpec(**{**params["dataset"], "split": tuple(params["dataset"]["split"])})
    entry = get_component("datasets", spec.name)
    (out / DATA.source).mkdir()
    cache_dir, secrets_dir = getattr(ctx, "cache_dir", None), getattr(ctx, "secrets_dir", None)
    key_file = (spec.options or {}).get("id_key_file")
    key = id_key(Path(secrets_dir), key_file) if secrets_dir is not None or key_file else None
    with (preprocess_cache.using(Path(cache_dir) / "preprocess" if cache_dir is not None else None) as cache,
          using_id_key(key) if key is not None else nullcontext()):
        data: ImageSet = entry.obj(spec, out / DATA.source)
    if not np.isfinite(data.images).all() or data.images.min() < 0 or data.images.max() > 1:
        raise BenchmarkError(f"data set {spec.name}: images must be finite and in [0, 1]")
    if data.images.shape[-2:] != (spec.image_size, spec.image_size):
        raise BenchmarkError(f"data set {spec.name}: returned {data.images.shape[-2:]} images, "
                             f"config asked for {spec.image_size}")
    if data.splits is None:
        data.splits = patient_split(data.patients, data.labels, spec.split, spec.seed)
    check_patient_splits(spec.name, data.patients, data.splits)
    summary = {"dataset": spec.name, "image_size": spec.image_size, "meta": data.meta, "splits": {},
               "skipped_files": len(data.meta.get("skipped") or [])}
    if cache is not None and cache.hits + cache.misses:
        summary["preprocess_cache"] = cache.as_dict()
    for split in SPLITS:
        labels = data.labels[data.splits == split]
        if len(set(labels.tolist())) < 2:
            raise BenchmarkError(f"data set {spec.name}: split '{split}' has {len(labels)} images and not both "
                                 "classes; use more images or other split fractions")
        summary["splits"][split] = {"n": len(labels), "positives": int(labels.sum())}
    data.save(out / DATA.images)
    (out / DATA.summary).write_text(json.dumps(summary, indent=1, default=str))

