"""Leaderboards as data: one JSON entry per (model, defense) and threat, every view rendered from those entries.

The overall entry (`entries/<model>--<defense>.json`) is the source of truth: every metric with its interval, how
each attack was run, the GAN table, cost, gradient-masking checks, provenance and per-image robust flags (ids
hashed), from which the threat boards (`entries/<threat>/...`), Markdown, CSV, plots and `index.html` are derived.
"""
from __future__ import annotations

import copy
import json
import shutil
import time
from pathlib import Path

import numpy as np
from filelock import FileLock

from benchmark.config import budget_label
from benchmark.errors import BenchmarkError
from benchmark.leaderboard.checks import evaluate, marks, verdict
from benchmark.leaderboard.entry import (
    BOARDS,
    board_attacks,
    cell_name,
    decode_flags,
    encode_flags,
    evaluation,
    hash_ids,
    slug,
    study_views,
    worst_flags,
)
from benchmark.leaderboard.markdown import render_boards_markdown, render_csv
from benchmark.leaderboard.seed_spread import seed_view
from benchmark.metrics import balanced_accuracy, rate, to_jsonable
from benchmark.names import NAME_PATTERN, NAME_RULE

__all__ = ["ENTRY_SCHEMA", "FRONTIER_PLOT", "board_entries", "build_entries", "load_entries", "rank",
           "refresh_checks", "render_markdown", "write_leaderboard"]

FRONTIER_PLOT = "frontier/frontier.png"  # where `python -m benchmark frontier` draws, relative to the board folder
ENTRY_SCHEMA = 2  # 2: robust balanced accuracy, rank (None when unreliable), marks, sanity, failed cells, versions

_ATTACK_KEYS = ("attack", "budget", "threat", "access", "adaptive", "attack_outcome", "perturbation",
                "attack_seconds", "images_per_s")


def _attack_record(row: dict, flags: dict | None = None) -> dict:
    a = {k: row[k] for k in _ATTACK_KEYS}
    a["cell"], a["budget_label"] = cell_name(a), budget_label(float(a["budget"]))
    target = (row.get("visibility") or {}).get("gan_target")
    if a["access"] == "transfer" and target == f"{row['model']}+{row['defense']}":
        a["access"] = "white-box"  # a transfer whose surrogate is the attacked model itself is white-box
        a["surrogate_is_target"] = True
    a["evaluation"] = evaluation(a["access"], bool(a["adaptive"]))
    for key in ("attack_outcome_argmax", "operating_point"):
        if row.get(key) is not None:
            a[key] = row[key]
    if flags is not None and "labels" in flags:
        a["robust_balanced_accuracy"] = balanced_accuracy(flags["labels"], flags["robust"])
    if row.get("visibility") is not None:
        a["visibility"] = row["visibility"]
    if row.get("seeds") is not None:  # a GAN cell over several GAN trainings
        a["seeds"] = seed_view(row["seeds"])
    return a


def _gan_row(a: dict) -> dict:
    """The study's table for one GAN cell: fooled per direction and overall, and how visible the fakes are."""
    o, vis = a["attack_outcome"], a.get("visibility") or {}
    pert, detector = vis.get("perturbation") or {}, vis.get("detector") or {}
    argmax = a.get("attack_outcome_argmax") or {}
    out = {"attack": a["attack"], "evaluation": a["evaluation"], "gan_target": vis.get("gan_target"),
           "pos_to_neg": o["pos_to_neg"], "neg_to_pos": o["neg_to_pos"], "overall": o["overall"],
           **study_views(o["pos_to_neg"], o["neg_to_pos"]),
           "argmax": ({"pos_to_neg": argmax["pos_to_neg"], "neg_to_pos": argmax["neg_to_pos"],
                       "overall": argmax["overall"], **study_views(argmax["pos_to_neg"], argmax["neg_to_pos"])}
                      if argmax else None),
           "robust_accuracy": o["robust_accuracy"],
           # detecting defenses: fooled AND not flagged as manipulated, and attacked images flagged
           "fooled_undetected": o.get("fooled_undetected"), "flagged_attacked": o.get("flagged_attacked"),
           "ssim": (pert.get("ssim") or {}).get("mean"), "psnr": (pert.get("psnr") or {}).get("mean"),
           "visibility_region": pert.get("region", "image"),
           "area_changed": (vis.get("area_changed") or {}).get("mean_fraction_of_breast"),
           "detector_auc": {k: (detector.get("auc") or {}).get(k) for k in ("value", "lo", "hi")},
           "detector_accuracy": detector.get("accuracy"), "seconds": a["attack_seconds"]}
    if a.get("seeds"):
        out["seeds"] = a["seeds"]
    return out


def _per_image(items: list[tuple[dict, dict]]) -> dict | None:
    ids = np.asarray(items[0][1]["ids"])
    if any(len(f["ids"]) != len(ids) or not np.array_equal(np.asarray(f["ids"]), ids) for _, f in items):
        return None  # cells scored on different images: no per-image pairing
    out = {"ids_sha256": hash_ids(ids), "clean_correct": encode_flags(items[0][1]["clean_correct"]),
           "robust": {cell_name(r): encode_flags(f["robust"]) for r, f in items}}
    if "labels" in items[0][1]:
        out["labels"] = encode_flags(items[0][1]["labels"])
    return out


def _galleries(model: str, defense: str, attacks: list[dict]) -> list[dict]:
    """Every GAN cell's gallery and the strongest pixel attack's (lowest robust accuracy, then largest budget)."""
    pixel = [a for a in attacks if a["threat"] != "semantic"]
    chosen = [a for a in attacks if a["threat"] == "semantic"]
    if pixel:
        chosen.append(min(pixel, key=lambda a: (a["attack_outcome"]["robust_accuracy"]["value"] or 0.0,
                                                -float(a["budget"]))))
    return [{"cell": a["cell"], "file": "galleries/" + slug(f"{model}--{defense}--{a['cell']}") + ".png",
             "title": f"{a['cell']} vs {model}+{defense} ({a['evaluation']})"} for a in chosen]


def _entry(model: str, defense: str, items: list[tuple[dict, dict]], dataset: str, provenance: dict,
           failed: list[dict] | None = None, code_versions: dict | None = None) -> dict:
    first = items[0][0]
    sanity = [(r, f) for r, f in items if r.get("role") == "sanity"]
    items = [(r, f) for r, f in items if r.get("role", "board") == "board"]  # "clean": no attack cell scored
    attacks = [_attack_record(r, f) for r, f in items]
    entry = {
        "schema": ENTRY_SCHEMA, "dataset": dataset, "board": "overall", "model": model, "defense": defense,
        "defense_info": first.get("defense_info"),
        "teacher": first.get("teacher"),  # distilled from this model: transfer attacks from it are stronger here
        "clean": first["clean"], "val_auc": first["val_auc"], "threshold": first["threshold"],
        "operating_point": {"threshold": first["threshold"], "rule": "positive iff P(positive) >= threshold, "
                            "chosen on validation (Youden's J); every attack aims at it"},
        "attacks": attacks, "per_image": _per_image(items) if items else None,
        "sanity": [_attack_record(r, f) for r, f in sanity],
        "failed_cells": failed or [],
        "masking_probe": first.get("masking_probe"), "eot_samples": first.get("eot_samples", 1),
        "detection": first.get("detection"),  # detecting defenses: {detection_rate, false_alarm_rate}
        "code_versions": code_versions or {},
    }
    if first.get("pretrained"):  # trained from a local weights file (train setting pretrained_file)
        entry["pretrained"] = {k: first["pretrained"][k] for k in ("file", "sha256")}
    entry["worst_case_robust_accuracy"], entry["worst_case_over"] = _worst(entry, "overall")
    entry["robust_balanced_accuracy"] = _worst_balanced(entry, "overall")
    entry["worst_case_by_threat"] = {b: _worst(entry, b)[0] for b in BOARDS[1:] if board_attacks(entry, b)}
    entry["robust_balanced_accuracy_by_threat"] = {b: _worst_balanced(entry, b) for b in BOARDS[1:]
                                                   if board_attacks(entry, b)}
    entry["gan"] = [_gan_row(a) for a in attacks if a["threat"] == "semantic"]
    entry["evaluation"] = {kind: sorted(a["cell"] for a in attacks if a["evaluation"] == kind)
                           for kind in sorted({a["evaluation"] for a in attacks})}
    entry["cost"] = {"train_seconds": first["train_seconds"],
                     "attack_seconds": sum(a["attack_seconds"] or 0.0 for a in attacks),
                     "images_per_s": {a["cell"]: a["images_per_s"] for a in attacks}}
    entry["galleries"] = _galleries(model, defense, attacks)
    _judge(entry, "overall")
    entry.update(train_seconds=first["train_seconds"], n_test=first["n_test"], **provenance)
    return entry


def _judge(entry: dict, board: str) -> None:
    """The entry's checks (once, on the overall entry) and its standing on a board: unreliable, reason, marks."""
    if "masking_checks" not in entry or board == "overall":
        entry["masking_checks"] = evaluate(entry)
    entry["unreliable"], entry["unreliable_reason"] = verdict(entry["masking_checks"], board)
    entry["marks"] = marks(entry["masking_checks"], board)


def _worst(entry: dict, board: str) -> tuple[dict | None, list[str]]:
    """Per-image worst case over a board's cells; without flags, the lowest cell (an upper bound)."""
    attacks = board_attacks(entry, board)
    if not attacks:
        return None, []
    flags = worst_flags(entry, board)
    if flags is not None:
        worst = rate(int(flags.sum()), len(flags)).to_dict()
    else:
        worst = min((a["attack_outcome"]["robust_accuracy"] for a in attacks), key=lambda r: r["value"] or 0.0)
    return worst, sorted(a["cell"] for a in attacks)


def _worst_balanced(entry: dict, board: str) -> dict | None:
    """Robust balanced accuracy of the per-image worst case over a board's cells (None without labels or flags)."""
    labels = (entry.get("per_image") or {}).get("labels")
    flags = worst_flags(entry, board) if board_attacks(entry, board) else None
    if labels is None or flags is None:
        return None
    return balanced_accuracy(decode_flags(labels), flags)


def _score(e: dict) -> float:
    bal = e.get("robust_balanced_accuracy") or {}
    return -1.0 if bal.get("value") is None else bal["value"]


def rank(entries: list[dict]) -> list[dict]:
    """Trustworthy entries first, best robust balanced accuracy (worst case per image) first, then raw worst-case
    robust accuracy, clean AUC and names; the unreliable ones after them, without a rank ("rank": None)."""
    def key(e: dict) -> tuple:
        auc = e["clean"]["auc"].get("value")
        worst = (e.get("worst_case_robust_accuracy") or {}).get("value")
        return (bool(e.get("unreliable")), -_score(e), -(worst or 0.0), -(auc or 0.0), e["model"], e["defense"])
    ordered = sorted(entries, key=key)
    position = 0
    for e in ordered:
        if e.get("unreliable"):
            e["rank"] = None
        else:
            position += 1
            e["rank"] = position
    return ordered


def build_entries(cells: list[tuple[dict, dict]], dataset: str, provenance: dict,
                  failed: list[dict] | None = None, code_versions: dict | None = None) -> list[dict]:
    """Group cell rows by (model, defense) into overall entries: per-image worst case, checks, provenance.

    failed: cells that did not produce a score ({model, defense, cell, attack, threat, error}); an entry keeps
    them, and a tripped check says why. code_versions: (model, defense) -> {stage or entry: version}."""
    groups: dict[tuple[str, str], list[tuple[dict, dict]]] = {}
    for row, flags in cells:
        groups.setdefault((row["model"], row["defense"]), []).append((row, flags))
    by_entry: dict[tuple[str, str], list[dict]] = {}
    for f in failed or []:
        by_entry.setdefault((f["model"], f["defense"]), []).append(f)
    entries = [_entry(m, d, items, dataset, provenance, by_entry.get((m, d)), (code_versions or {}).get((m, d)))
               for (m, d), items in groups.items()]
    return [to_jsonable(e) for e in rank(entries)]


def board_entries(entries: list[dict], board: str) -> list[dict]:
    """The entries of one threat board (its cells, worst case and reliability only), ranked; [] when empty."""
    if board == "overall":
        return rank(entries)
    out = []
    for e in entries:
        attacks = board_attacks(e, board)
        broken = [f for f in e.get("failed_cells", []) if f.get("threat") == board]
        if not attacks and not broken:
            continue
        view = {k: copy.deepcopy(v) for k, v in e.items() if k != "per_image"}
        view.update(board=board, attacks=attacks, gan=e["gan"] if board == "semantic" else [],
                    worst_case_robust_accuracy=e["worst_case_by_threat"].get(board),
                    robust_balanced_accuracy=(e.get("robust_balanced_accuracy_by_threat") or {}).get(board),
                    worst_case_over=sorted(a["cell"] for a in attacks),
                    galleries=[g for g in e.get("galleries", []) if g["cell"] in {a["cell"] for a in attacks}])
        _judge(view, board)
        out.append(view)
    return rank(out)


def refresh_checks(entries: list[dict]) -> list[dict]:
    """Entries with their checks, `unreliable` and marks re-evaluated (e.g. after a threshold change), ranked."""
    for e in entries:
        _judge(e, "overall")
    return rank(entries)


def load_entries(folder: Path) -> list[dict]:
    """The overall entries committed under folder/entries, ranked; a bad file fails with its name."""
    files = sorted((Path(folder) / "entries").glob("*.json"))
    if not files:
        raise BenchmarkError(f"no leaderboard entries under {folder}/entries; run the matrix or pass another folder")
    entries = []
    for path in files:
        try:
            entries.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise BenchmarkError(f"{path}: not a leaderboard entry ({exc})") from None
        if "model" not in entries[-1] or "attacks" not in entries[-1]:
            raise BenchmarkError(f"{path}: not a leaderboard entry (no model or attacks)")
    return rank(entries)


def render_markdown(entries: list[dict], dataset: str) -> str:
    """leaderboard.md for overall entries: every threat board, the GAN table, checks and provenance."""
    return render_boards_markdown({b: board_entries(entries, b) for b in BOARDS}, dataset)


def _entry_file(folder: Path, entry: dict) -> Path:
    """folder/<model>--<defense>.json; a name outside the safe pattern (no /, no leading dot) is refused."""
    if not all(isinstance(entry[k], str) and NAME_PATTERN.fullmatch(entry[k]) for k in ("model", "defense")):
        raise BenchmarkError(f"entry {entry['model']!r} + {entry['defense']!r}: refused as file names; {NAME_RULE}")
    return folder / f"{entry['model']}--{entry['defense']}.json"


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")


def write_leaderboard(folder: Path, entries: list[dict], dataset: str,
                      galleries: dict[str, Path] | None = None) -> Path:
    """Replace folder's leaderboard with one rendered from entries; return the leaderboard.md path.

    galleries maps an entry's gallery file ('galleries/x.png') to the PNG to copy; None keeps the folder's own.
    Everything is built in a staging folder first, so a crash never leaves a half-written leaderboard.
    """
    from benchmark.leaderboard.html import render_html
    from benchmark.leaderboard.plots import render_plots

    folder = Path(folder)
    entries = rank(entries)
    staging = folder.parent / f".{folder.name}.tmp-{time.time_ns()}"
    try:
        for e in entries:
            _write_json(_entry_file(staging / "entries", e), e)
        boards = {b: board_entries(entries, b) for b in BOARDS}
        for board in BOARDS[1:]:
            for e in boards[board]:
                _write_json(_entry_file(staging / "entries" / board, e), e)
        _write_json(staging / "leaderboard.json", [{k: v for k, v in e.items() if k != "per_image"}
                                                   for e in entries])
        (staging / "galleries").mkdir(parents=True)
        if galleries is None and (folder / "galleries").is_dir():
            shutil.copytree(folder / "galleries", staging / "galleries", dirs_exist_ok=True)
        for name, source in (galleries or {}).items():
            if Path(source).is_file():
                shutil.copyfile(source, staging / name)
        plots = render_plots(entries, staging / "plots")
        (staging / "leaderboard.md").write_text(render_boards_markdown(boards, dataset))
        (staging / "leaderboard.csv").write_text(render_csv(boards))
        frontier = FRONTIER_PLOT if (folder / FRONTIER_PLOT).is_file() else None  # drawn by `benchmark frontier`
        (staging / "index.html").write_text(render_html(boards, dataset, plots, staging, frontier))
        folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder.parent / f".{folder.name}.lock")):  # two runs finishing at once swap in turn
            for item in sorted(staging.iterdir()):
                target = folder / item.name
                if target.is_dir():
                    shutil.rmtree(target)
                item.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder / "leaderboard.md"
