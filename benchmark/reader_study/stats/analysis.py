"""The study's numbers from its answers: can readers tell the GAN's fakes from real images, how sure are they, do
they agree, can they point at the edit; and the benchmark's detector and the attacked model on the same images.

Each answer is a call (real/fake) with a confidence 1..5, read as one 10-point rating (1 = real, certain ... 5 = real,
a guess; 6 = fake, a guess ... 10 = fake, certain), from which the empirical ROC AUCs are computed (fake = positive).
Per-reader numbers use every answer a reader gave; the MRMC analysis and the agreement use the readers who answered
every image (all readers read the same images: a fully crossed design).
"""
from __future__ import annotations

import sqlite3

import numpy as np

from benchmark.metrics import rate
from benchmark.reader_study.answers import progress
from benchmark.reader_study.db import read_meta
from benchmark.reader_study.images import unpack_mask
from benchmark.reader_study.stats.agreement import category_counts, fleiss_kappa, fleiss_kappa_interval
from benchmark.reader_study.stats.mrmc import auc, obuchowski_rockette

__all__ = ["PUBLISHED_READERS", "analyse", "call_measures", "ten_point"]

# the study's five breast-imaging radiologists telling real from GAN-made mammograms (Zhou et al. 2021)
PUBLISHED_READERS = {"accuracy_low": 0.29, "accuracy_high": 0.71, "readers": 5}


def ten_point(call: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """A real/fake call (0/1) with confidence 1..5 as one rating 1..10 (real+5 = 1, real+1 = 5, fake+1 = 6,
    fake+5 = 10)."""
    call, confidence = np.asarray(call), np.asarray(confidence)
    return np.where(call == 1, 5 + confidence, 6 - confidence)


def _auc(scores: np.ndarray, truth: np.ndarray) -> float | None:
    """Empirical AUC, or None when a class has fewer than 2 images."""
    truth = np.asarray(truth)
    if min(int(truth.sum()), int((1 - truth).sum())) < 2:
        return None
    return float(auc(np.asarray(scores, dtype=float), truth))


def call_measures(calls: np.ndarray, truth: np.ndarray, scores: np.ndarray) -> dict:
    """Accuracy, sensitivity to fakes, specificity (Wilson intervals), fakes passed as real and the AUC of scores,
    for calls (1 = fake) against truth (1 = synthetic)."""
    calls, truth = np.asarray(calls, dtype=int), np.asarray(truth, dtype=int)
    fake = truth == 1
    return {"accuracy": rate(int((calls == truth).sum()), calls.size).to_dict(),
            "sensitivity": rate(int((calls[fake] == 1).sum()), int(fake.sum())).to_dict(),
            "specificity": rate(int((calls[~fake] == 0).sum()), int((~fake).sum())).to_dict(),
            "fakes_passed": rate(int((calls[fake] == 0).sum()), int(fake.sum())).to_dict(),
            "auc": _auc(scores, truth)}


def _answers(con: sqlite3.Connection, reader: int) -> list[tuple]:
    return con.execute("SELECT a.item, i.synthetic, a.call, a.confidence, a.x, a.y, i.edited, i.width, i.height "
                       "FROM answers a JOIN items i ON i.item = a.item WHERE a.reader = ? ORDER BY a.seq",
                       (reader,)).fetchall()


def _localisation(rows: list[tuple]) -> dict:
    """Over fakes the reader marked: the mark inside the edited region (the pixel under it moved by > 0.02)."""
    hits = marked = 0
    for _, synthetic, _, _, x, y, edited, width, height in rows:
        if synthetic and x is not None and edited is not None:
            mask = unpack_mask(edited, height, width)
            marked += 1
            hits += bool(mask[min(int(y), height - 1), min(int(x), width - 1)])
    return rate(hits, marked).to_dict()


def _machines(con: sqlite3.Connection) -> dict:
    """The detector on every study image; the attacked model on the study's cases."""
    items = con.execute("SELECT i.synthetic, i.detector, m.correct, m.fooled FROM items i LEFT JOIN model m "
                        "USING (case_id)").fetchall()
    out = {}
    scored = [(s, d) for s, d, _, _ in items if d is not None]
    if scored:
        truth = np.array([s for s, _ in scored])
        score = np.array([d for _, d in scored])
        out["detector"] = call_measures((score >= 0.5).astype(int), truth, score)
    modelled = [(s, c, f) for s, _, c, f in items if c is not None]
    if modelled:
        fakes_right = [f for s, c, f in modelled if s == 1 and c]
        out["model"] = {"accuracy_on_originals": rate(sum(c for s, c, _ in modelled if s == 0),
                                                      sum(1 for s, _, _ in modelled if s == 0)).to_dict(),
                        "fooled_by_fakes": rate(sum(fakes_right), len(fakes_right)).to_dict()}
    return out


def analyse(con: sqlite3.Connection, covariance: str = "jackknife") -> dict:
    """Every number of the report, as JSON-able data; covariance: the OR analysis's "jackknife" or "delong"."""
    meta = read_meta(con)
    readers = progress(con)
    items = con.execute("SELECT item, synthetic FROM items ORDER BY item").fetchall()
    out = {"study": {k: meta.get(k) for k in ("name", "dataset", "run_id", "fakes", "cases", "images", "seed",
                                              "layout", "design", "created", "image_size", "window", "fakes_ssim",
                                              "model_cell", "detector", "git_commit")},
           "published_readers": PUBLISHED_READERS, "items": len(items),
           "synthetic_items": sum(s for _, s in items),
           "answers": sum(r["answered"] for r in readers), "per_reader": [], **_machines(con)}
    complete = []
    for r in readers:
        rows = _answers(con, r["reader"])
        entry = {"name": r["name"], "answered": r["answered"], "total": r["total"]}
        if rows:
            truth, calls, conf = (np.array([row[k] for row in rows]) for k in (1, 2, 3))
            entry.update(call_measures(calls, truth, ten_point(calls, conf)), localisation=_localisation(rows))
        out["per_reader"].append(entry)
        if r["answered"] == r["total"] > 0:
            complete.append(r)
    out["complete_readers"] = [r["name"] for r in complete]
    if meta.get("layout") == "counterbalanced":
        out["pooled"] = None
        out["reason"] = ("the counterbalanced design gives readers different images; the pooled AUC's MRMC interval "
                         "and the agreement need every reader on the same images (create without --counterbalance)")
        return out
    if len(complete) < 2:
        out["pooled"] = None
        out["reason"] = (f"{len(complete)} reader(s) answered every image; the pooled AUC's MRMC interval and the "
                         "agreement need at least 2")
        return out
    column = {item: k for k, (item, _) in enumerate(items)}
    calls, conf = np.zeros((2, len(complete), len(items)), dtype=int)
    for j, r in enumerate(complete):
        for item, _, call, confidence, *_ in _answers(con, r["reader"]):
            calls[j, column[item]], conf[j, column[item]] = call, confidence
    truth = np.array([s for _, s in items])
    ratings = ten_point(calls, conf)
    counts = category_counts(calls, 2)
    lo, hi = fleiss_kappa_interval(counts)
    analysis = obuchowski_rockette(ratings[None], truth, covariance).to_dict()
    out["pooled"] = {
        "readers": len(complete), "or": analysis,
        **call_measures(calls.ravel(), np.tile(truth, len(complete)), ratings.ravel()),
        "auc": analysis["modality_auc"][0],  # the readers' mean AUC, whose interval the OR analysis gives
        "kappa": {"value": fleiss_kappa(counts), "lo": lo, "hi": hi},
    }
    return out
