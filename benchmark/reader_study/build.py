"""Create a study from a recorded run: sample test cases, pair each original with its lesion-GAN fake, write the
study file with one counterbalanced reading order per reader."""
from __future__ import annotations

import hashlib
import json
import secrets
import time
from pathlib import Path

import numpy as np

from benchmark.errors import BenchmarkError
from benchmark.execution.artifacts import read_data, read_fakes
from benchmark.execution.records import git_commit
from benchmark.execution.store import Store
from benchmark.reader_study.db import STUDY_FILE, connect, create_schema
from benchmark.reader_study.images import to_png
from benchmark.reader_study.model_outcome import model_outcomes, white_box_score

__all__ = ["FakesSource", "create_study", "find_fakes", "reading_order"]

DIRECTIONS = {1: "lesion removed (positive made negative-looking)", 0: "lesion inserted (negative made "
              "positive-looking)"}


class FakesSource:
    """A run's fakes artifact and the data artifact it was made from."""

    def __init__(self, run_id: str, label: str, fakes_key: str, data_key: str,
                 score: tuple[str, str] | None = None) -> None:
        self.run_id, self.label, self.fakes_key, self.data_key = run_id, label, fakes_key, data_key
        self.score = score  # (key, label) of the GAN cell that attacked the fakes' own target with them


def find_fakes(run_dir: Path, store: Store, model: str | None = None, defense: str | None = None) -> FakesSource:
    """The run's stored fakes made against model+defense (the first stored one when neither is given)."""
    manifest = json.loads((Path(run_dir) / "manifest.json").read_text())
    found = []
    for stage in manifest["stages"]:
        if stage["kind"] != "fakes" or stage["status"] not in ("done", "cached") or not store.has(stage["key"]):
            continue
        target = stage["label"].removeprefix("fakes vs ")
        m, _, d = target.partition("+")
        if (model is None or m == model) and (defense is None or d == defense):
            found.append(FakesSource(manifest["run_id"], stage["label"], stage["key"], stage["deps"]["data"],
                                     white_box_score(manifest, store, stage["key"])))
    found = [f for f in found if store.has(f.data_key)]
    if not found:
        wanted = f" against {model or '*'}+{defense or '*'}" if model or defense else ""
        raise BenchmarkError(f"run {manifest['run_id']} has no stored GAN fakes{wanted}; run a matrix with the "
                             "`gan` attack (configs/default.toml has it) or pick another --model/--defense/--run")
    return found[0]


def reading_order(items: dict[tuple[str, int], int], case_ids: list[str], rng: np.random.Generator) -> list[int]:
    """One reader's order: the cases split at random into halves A and B; first A's originals and B's fakes,
    shuffled, then A's fakes and B's originals, shuffled, so that the two versions of a case are never in the
    same half (a pause between the halves is a wash-out)."""
    cases = [case_ids[k] for k in rng.permutation(len(case_ids))]
    a, b = cases[: len(cases) // 2], cases[len(cases) // 2:]
    first = [items[c, 0] for c in a] + [items[c, 1] for c in b]
    second = [items[c, 1] for c in a] + [items[c, 0] for c in b]
    return [int(i) for i in rng.permutation(first)] + [int(i) for i in rng.permutation(second)]


def _pick(labels: np.ndarray, cases: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices of cases test images, half positive and half negative (the odd one negative)."""
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    n_pos, n_neg = cases // 2, cases - cases // 2
    if cases < 4 or n_pos > len(pos) or n_neg > len(neg):
        raise BenchmarkError(f"--cases {cases}: the test split has {len(pos)} positive and {len(neg)} negative "
                             f"images; ask for 4 to {2 * min(len(pos), len(neg))} cases")
    return np.sort(np.concatenate([rng.choice(pos, n_pos, replace=False), rng.choice(neg, n_neg, replace=False)]))


def create_study(source: FakesSource, store: Store, out: Path, cases: int, readers: int, seed: int = 0,
                 dataset: str = "unknown") -> Path:
    """Write out/study.sqlite: cases x (original, fake) items and a reading order per reader; return its path."""
    out = Path(out)
    if (out / STUDY_FILE).exists():
        raise BenchmarkError(f"--out {out}: a study already exists there; choose another folder or delete it")
    if not 1 <= readers <= 500:
        raise BenchmarkError(f"--readers {readers}: give 1 to 500 readers (2 or more for the MRMC analysis)")
    data = read_data(store.path(source.data_key))
    fakes, record = read_fakes(store.path(source.fakes_key))
    if len(fakes) != len(data):
        raise BenchmarkError(f"fakes artifact {source.fakes_key[:12]} has {len(fakes)} images for {len(data)} data "
                             "rows; rerun the matrix")
    rng = np.random.default_rng(seed)
    test_rows = np.flatnonzero(data.splits == "test")
    rows = test_rows[_pick(data.labels[test_rows], cases, rng)]
    salt = secrets.token_bytes(16)  # never stored: the study's case ids cannot be linked back to the run's ids
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{STUDY_FILE}.tmp-{time.time_ns()}"
    con = connect(tmp)
    try:
        meta = {"name": out.name, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "dataset": dataset, "run_id": source.run_id, "fakes": source.label, "fakes_key": source.fakes_key,
                "data_key": source.data_key, "cases": int(cases), "seed": int(seed),
                "design": "fully crossed: every reader reads every case as original and as fake, the two versions "
                          "in different halves of a reader's own random order",
                "image_size": int(data.images.shape[-1]), "admin_token": secrets.token_urlsafe(16),
                "fakes_ssim": (record.get("perturbation") or {}).get("ssim", {}).get("mean"),
                "model_cell": source.score[1] if source.score else None, "git_commit": git_commit()}
        create_schema(con, meta)  # executescript commits on its own
        con.execute("BEGIN")
        outcomes = model_outcomes(store, source.score[0]) if source.score else {}
        items: dict[tuple[str, int], int] = {}
        case_ids = []
        for row in rows:
            case_id = hashlib.sha256(salt + str(data.ids[row]).encode()).hexdigest()[:16]
            case_ids.append(case_id)
            truth = int(data.labels[row])
            if str(data.ids[row]) in outcomes:
                con.execute("INSERT INTO model VALUES (?, ?, ?)", (case_id, *outcomes[str(data.ids[row])]))
            for synthetic, image in ((0, data.images[row]), (1, fakes[row])):
                cur = con.execute("INSERT INTO items (token, case_id, synthetic, truth, direction, png) "
                                  "VALUES (?, ?, ?, ?, ?, ?)",
                                  (secrets.token_urlsafe(12), case_id, synthetic, truth,
                                   DIRECTIONS[truth] if synthetic else "original", to_png(image)))
                items[case_id, synthetic] = cur.lastrowid
        width = len(str(readers))
        for k in range(readers):
            cur = con.execute("INSERT INTO readers (name, token) VALUES (?, ?)",
                              (f"reader-{k + 1:0{width}d}", secrets.token_urlsafe(12)))
            order = reading_order(items, case_ids, np.random.default_rng([seed, k]))
            con.executemany("INSERT INTO sequence VALUES (?, ?, ?)",
                            [(cur.lastrowid, s, item) for s, item in enumerate(order)])
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
    return out / STUDY_FILE
