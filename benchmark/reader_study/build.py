"""Create a study from a recorded run: sample test cases, show each as its original or as its lesion-GAN fake (half
and half, within each label; --counterbalance: the other half to every other reader), or with --pairs both; write the
study file. Readers are added later (readers.py)."""
from __future__ import annotations

import hashlib
import secrets
import time
from pathlib import Path

import numpy as np

from benchmark.errors import BenchmarkError
from benchmark.execution.artifacts import read_data, read_fakes
from benchmark.execution.records import git_commit
from benchmark.execution.store import Store
from benchmark.reader_study.db import STUDY_FILE, connect, create_schema
from benchmark.reader_study.images import edited_mask, pack_mask, study_window, to_png
from benchmark.reader_study.model_outcome import model_outcomes
from benchmark.reader_study.readers import hash_token
from benchmark.reader_study.sources import FakesSource

__all__ = ["DESIGNS", "create_study", "shown_as_fake"]

DIRECTIONS = {1: "lesion removed (positive made negative-looking)", 0: "lesion inserted (negative made "
              "positive-looking)"}
DESIGNS = {
    "crossed": "every reader reads the same images, each case once: as its original or as its fake (half and half "
               "within each label, chosen at random), in the reader's own random order; never an image and its own "
               "fake",
    "pairs": "every reader reads every case twice, as its original and as its fake, the two versions in different "
             "halves of the reader's own random order",
    "counterbalanced": "every reader reads each case once, in their own random order; readers 1, 3, 5, ... see one "
                       "half of the cases (within each label) as fakes and the rest as originals, readers 2, 4, ... "
                       "the other way round; never an image and its own fake for the same reader",
}


def _pick(labels: np.ndarray, cases: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices of cases test images, half positive and half negative (the odd one negative)."""
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    n_pos, n_neg = cases // 2, cases - cases // 2
    if cases < 4 or n_pos > len(pos) or n_neg > len(neg):
        raise BenchmarkError(f"--cases {cases}: the test split has {len(pos)} positive and {len(neg)} negative "
                             f"images; ask for 4 to {2 * min(len(pos), len(neg))} cases")
    return np.sort(np.concatenate([rng.choice(pos, n_pos, replace=False), rng.choice(neg, n_neg, replace=False)]))


def shown_as_fake(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """bool per case: shown as its fake. Within each label, a random half (positives round up, negatives down), so
    that real and fake images are balanced overall and within each label."""
    fake = np.zeros(len(labels), dtype=bool)
    for label, first in ((1, 0), (0, 1)):
        group = rng.permutation(np.flatnonzero(labels == label))
        fake[group[first::2]] = True
    return fake


def create_study(source: FakesSource, store: Store, out: Path, cases: int, seed: int = 0, dataset: str = "unknown",
                 layout: str = "crossed", detector: bool = True, display: int = 512) -> tuple[Path, str]:
    """Write out/study.sqlite (layout: one of DESIGNS); return its path and the organiser's token (stored only as a
    hash: shown once)."""
    out = Path(out)
    if (out / STUDY_FILE).exists():
        raise BenchmarkError(f"--out {out}: a study already exists there; choose another folder or delete it")
    if layout not in DESIGNS:
        raise BenchmarkError(f"design {layout!r}: use one of {', '.join(DESIGNS)}")
    if not 0 <= display <= 4096:
        raise BenchmarkError(f"--display-size {display}: give 0 (as stored) to 4096 pixels")
    data = read_data(store.path(source.data_key))
    fakes, record = read_fakes(store.path(source.fakes_key))
    if len(fakes) != len(data):
        raise BenchmarkError(f"fakes artifact {source.fakes_key[:12]} has {len(fakes)} images for {len(data)} data "
                             "rows; rerun the matrix")
    rng = np.random.default_rng(seed)
    test_rows = np.flatnonzero(data.splits == "test")
    rows = test_rows[_pick(data.labels[test_rows], cases, rng)]
    as_fake = shown_as_fake(data.labels[rows], rng)
    shown = [(row, s) for row, f in zip(rows, as_fake) for s in ((int(f),) if layout == "crossed" else (0, 1))]
    shown = [shown[k] for k in rng.permutation(len(shown))]  # item ids say nothing of case or version
    window = study_window(data.images[rows])
    scores, detected = None, None
    if detector:
        detected = _score(data, fakes, shown)
        scores = detected.pop("scores")
    salt = secrets.token_bytes(16)  # never stored: the study's case ids cannot be linked back to the run's ids
    admin = secrets.token_urlsafe(32)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{STUDY_FILE}.tmp-{time.time_ns()}"
    case_ids = {int(row): hashlib.sha256(salt + str(data.ids[row]).encode()).hexdigest()[:16] for row in rows}
    con = connect(tmp)
    try:
        meta = {"name": out.name, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "dataset": dataset, "run_id": source.run_id, "fakes": source.label, "fakes_key": source.fakes_key,
                "data_key": source.data_key, "cases": int(cases), "images": len(shown), "seed": int(seed),
                "layout": layout, "design": DESIGNS[layout],
                "odd_reader_fakes": sorted(case_ids[int(row)] for row, f in zip(rows, as_fake) if f),
                "image_size": int(data.images.shape[-1]), "window": list(window), "display_size": int(display),
                "admin_token_hash": hash_token(admin), "detector": detected,
                "fakes_ssim": (record.get("perturbation") or {}).get("ssim", {}).get("mean"),
                "model_cell": source.score[1] if source.score else None, "git_commit": git_commit()}
        create_schema(con, meta)  # executescript commits on its own
        con.execute("BEGIN")
        outcomes = model_outcomes(store, source.score[0]) if source.score else {}
        for row in rows:
            if str(data.ids[row]) in outcomes:
                con.execute("INSERT INTO model VALUES (?, ?, ?)", (case_ids[int(row)], *outcomes[str(data.ids[row])]))
        for k, (row, synthetic) in enumerate(shown):
            image = fakes[row] if synthetic else data.images[row]
            truth = int(data.labels[row])
            con.execute("INSERT INTO items (token, case_id, synthetic, truth, direction, png, width, height, edited, "
                        "detector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (secrets.token_urlsafe(12), case_ids[int(row)], synthetic, truth,
                         DIRECTIONS[truth] if synthetic else "original", to_png(image, window, display),
                         int(image.shape[-1]), int(image.shape[-2]),
                         pack_mask(edited_mask(data.images[row], fakes[row])) if synthetic else None,
                         None if scores is None else float(scores[k])))
        con.execute("COMMIT")
    except BaseException:
        con.close()
        tmp.unlink(missing_ok=True)
        raise
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    for suffix in ("-wal", "-shm"):
        Path(str(tmp) + suffix).unlink(missing_ok=True)
    tmp.replace(out / STUDY_FILE)
    return out / STUDY_FILE, admin


def _score(data: object, fakes: np.ndarray, shown: list[tuple[int, int]]) -> dict:
    """The detector's P(fake) for every shown image, in shown order, with its facts."""
    from benchmark.reader_study.detector import detector_scores

    images = np.stack([fakes[row] if s else data.images[row] for row, s in shown])
    return detector_scores(data.images, fakes, data.splits, images)
