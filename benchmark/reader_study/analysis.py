"""The study's numbers from its answers: can readers tell the GAN's fakes from real images, do the fakes change
their cancer reading, how often are they fooled per direction, and how well do they agree.

Only readers who answered every item enter the MRMC analysis and the agreement (a fully crossed design); the others
are listed with their progress. Ratings: a yes/no call with low/medium/high confidence becomes a 6-point scale
(1 = no, high confidence ... 6 = yes, high confidence), from which the empirical AUCs are computed.
"""
from __future__ import annotations

import sqlite3

import numpy as np

from benchmark.metrics import rate
from benchmark.reader_study.agreement import category_counts, fleiss_kappa, fleiss_kappa_interval
from benchmark.reader_study.answers import progress
from benchmark.reader_study.db import read_meta
from benchmark.reader_study.mrmc import obuchowski_rockette

__all__ = ["analyse", "six_point"]


def six_point(call: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """A yes/no call (1/0) with confidence 1..3 as one rating 1..6 (no+high = 1, no+low = 3, yes+low = 4, yes+high
    = 6)."""
    call, confidence = np.asarray(call), np.asarray(confidence)
    return np.where(call == 1, 3 + confidence, 4 - confidence)


def _table(con: sqlite3.Connection, readers: list[int], n_items: int) -> dict[str, np.ndarray]:
    """(readers, items) arrays of each answer field, items in item-id order."""
    out = {k: np.zeros((len(readers), n_items), dtype=int) for k in
           ("cancer", "cancer_confidence", "manipulated", "manipulated_confidence")}
    items = [i for (i,) in con.execute("SELECT item FROM items ORDER BY item")]
    column = {item: k for k, item in enumerate(items)}
    for r, reader in enumerate(readers):
        for item, *values in con.execute("SELECT item, cancer, cancer_confidence, manipulated, "
                                         "manipulated_confidence FROM answers WHERE reader = ?", (reader,)):
            for name, value in zip(out, values):
                out[name][r, column[item]] = value
    return out


def _kappa(calls: np.ndarray) -> dict:
    counts = category_counts(calls, 2)
    lo, hi = fleiss_kappa_interval(counts)
    return {"value": fleiss_kappa(counts), "lo": lo, "hi": hi, "readers": int(calls.shape[0]),
            "items": int(calls.shape[1])}


def analyse(con: sqlite3.Connection, covariance: str = "jackknife") -> dict:
    """Every number of the report, as JSON-able data; covariance: the OR analysis's "jackknife" or "delong"."""
    meta = read_meta(con)
    readers = progress(con)
    complete = [r for r in readers if r["answered"] == r["total"] and r["total"] > 0]
    items = con.execute("SELECT item, case_id, synthetic, truth FROM items ORDER BY item").fetchall()
    synthetic = np.array([s for _, _, s, _ in items])
    truth = np.array([t for _, _, _, t in items])
    cases = sorted({c for _, c, _, _ in items})
    out = {"study": {k: meta.get(k) for k in ("name", "dataset", "run_id", "fakes", "cases", "seed", "design",
                                              "created", "image_size", "fakes_ssim", "model_cell", "git_commit")},
           "readers": [{"name": r["name"], "answered": r["answered"], "total": r["total"]} for r in readers],
           "complete_readers": len(complete), "items": len(items), "answers": sum(r["answered"] for r in readers)}
    if len(complete) < 2:
        out["analysis"] = None
        out["reason"] = (f"{len(complete)} reader(s) answered every image; the MRMC analysis and the agreement need "
                         "at least 2")
        return out
    t = _table(con, [r["reader"] for r in complete], len(items))
    manipulated = six_point(t["manipulated"], t["manipulated_confidence"])
    cancer = six_point(t["cancer"], t["cancer_confidence"])
    names = [r["name"] for r in complete]

    # 1. real vs fake: every item is a case, truth = synthetic
    detect = obuchowski_rockette(manipulated[None], synthetic, covariance).to_dict()
    correct = t["manipulated"] == synthetic[None, :]
    accuracy = [{"reader": n, **rate(int(c.sum()), c.size).to_dict()} for n, c in zip(names, correct)]

    # 2. cancer reading, original vs synthetic version of the same cases (two modalities, fully crossed)
    index = {(c, s): k for k, (_, c, s, _) in enumerate(items)}
    case_truth = np.array([truth[index[c, 0]] for c in cases])
    by_version = np.stack([cancer[:, [index[c, s] for c in cases]] for s in (0, 1)])  # (2, readers, cases)
    reading = obuchowski_rockette(by_version, case_truth, covariance).to_dict()

    # 3. fooled, the study's measure: over (reader, case) pairs whose original the reader called right, the fake's
    # call flipped to the other class; per direction (positives made negative, negatives made positive)
    call_orig = np.stack([t["cancer"][:, index[c, 0]] for c in cases], axis=1)
    call_fake = np.stack([t["cancer"][:, index[c, 1]] for c in cases], axis=1)
    right = call_orig == case_truth[None, :]
    fooled = right & (call_fake != case_truth[None, :])
    directions = {}
    for name, label in (("pos_to_neg", 1), ("neg_to_pos", 0)):
        mask = right & (case_truth[None, :] == label)
        directions[name] = {**rate(int(fooled[mask].sum()), int(mask.sum())).to_dict(),
                            "per_reader": [int(f[m].sum()) for f, m in zip(fooled, mask)],
                            "per_reader_n": [int(m.sum()) for m in mask]}
    directions["overall"] = {**rate(int(fooled.sum()), int(right.sum())).to_dict(),
                             "per_reader": [int(f.sum()) for f in fooled],
                             "per_reader_n": [int(m.sum()) for m in right]}
    model = {case: (ok, flipped) for case, ok, flipped in con.execute("SELECT case_id, correct, fooled FROM model")}
    if model:  # the attacked model on the same cases, the same measure: over originals it read right
        for name, label in (("pos_to_neg", 1), ("neg_to_pos", 0)):
            right_m = [c for c, y in zip(cases, case_truth) if y == label and c in model and model[c][0]]
            directions[name]["model"] = rate(sum(model[c][1] for c in right_m), len(right_m)).to_dict()
        right_m = [c for c in cases if c in model and model[c][0]]
        directions["overall"]["model"] = rate(sum(model[c][1] for c in right_m), len(right_m)).to_dict()
    sensitivity = {v: rate(int((t["cancer"][:, (truth == 1) & (synthetic == s)] == 1).sum()),
                           int(len(names) * ((truth == 1) & (synthetic == s)).sum())).to_dict()
                   for v, s in (("original", 0), ("synthetic", 1))}
    out["analysis"] = {
        "readers": names,
        "real_vs_fake": {"or": detect, "accuracy": accuracy,
                         "pooled_accuracy": rate(int(correct.sum()), correct.size).to_dict(),
                         "kappa": _kappa(t["manipulated"])},
        "cancer_reading": {"or": reading, "modalities": ["original", "synthetic"],
                           "sensitivity": sensitivity, "kappa_original": _kappa(t["cancer"][:, synthetic == 0]),
                           "kappa_synthetic": _kappa(t["cancer"][:, synthetic == 1])},
        "fooled": directions,
        "reading_ms_median": float(np.median([ms for (ms,) in con.execute(
            "SELECT ms FROM answers WHERE ms IS NOT NULL")] or [np.nan])),
    }
    return out
