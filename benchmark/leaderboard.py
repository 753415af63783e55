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

from benchmark.config import budget_label
from benchmark.errors import BenchmarkError
from benchmark.leaderboard_entry import (
    BOARDS,
    board_attacks,
    cell_name,
    encode_flags,
    evaluation,
    hash_ids,
    slug,
    worst_flags,
)
from benchmark.leaderboard_markdown import render_boards_markdown, render_csv
from benchmark.masking_checks import evaluate, verdict
from benchmark.metrics import rate, to_jsonable

__all__ = ["board_entries", "build_entries", "load_entries", "rank", "refresh_checks", "render_markdown",
           "write_leaderboard"]

_ATTACK_KEYS = ("attack", "budget", "threat", "access", "adaptive", "attack_outcome", "perturbation",
                "attack_seconds", "images_per_s")


def _attack_record(row: dict) -> dict:
    a = {k: row[k] for k in _ATTACK_KEYS}
    a["cell"], a["budget_label"] = cell_name(a), budget_label(float(a["budget"]))
    a["evaluation"] = evaluation(a["access"], bool(a["adaptive"]))
    if row.get("visibility") is not None:
        a["visibility"] = row["visibility"]
    return a


def _gan_row(a: dict) -> dict:
    """The study's table for one GAN cell: fooled per direction and overall, and how visible the fakes are."""
    o, vis = a["attack_outcome"], a.get("visibility") or {}
    pert, detector = vis.get("perturbation") or {}, vis.get("detector") or {}
    out = {"attack": a["attack"], "evaluation": a["evaluation"], "gan_target": vis.get("gan_target"),
           "pos_to_neg": o["pos_to_neg"], "neg_to_pos": o["neg_to_pos"], "overall": o["overall"],
           "robust_accuracy": o["robust_accuracy"],
           # detecting defenses: fooled AND not flagged as manipulated, and attacked images flagged
           "fooled_undetected": o.get("fooled_undetected"), "flagged_attacked": o.get("flagged_attacked"),
           "ssim": (pert.get("ssim") or {}).get("mean"), "psnr": (pert.get("psnr") or {}).get("mean"),
           "area_changed": (vis.get("area_changed") or {}).get("mean_fraction_of_breast"),
           "detector_auc": {k: (detector.get("auc") or {}).get(k) for k in ("value", "lo", "hi")},
           "detector_accuracy": detector.get("accuracy"), "seconds": a["attack_seconds"]}
    return out


def _per_image(items: list[tuple[dict, dict]]) -> dict | None:
    ids = np.asarray(items[0][1]["ids"])
    if any(len(f["ids"]) != len(ids) or not np.array_equal(np.asarray(f["ids"]), ids) for _, f in items):
        return None  # cells scored on different images: no per-image pairing
    return {"ids_sha256": hash_ids(ids), "clean_correct": encode_flags(items[0][1]["clean_correct"]),
            "robust": {cell_name(r): encode_flags(f["robust"]) for r, f in items}}


def _galleries(model: str, defense: str, attacks: list[dict], rows: dict[str, dict]) -> list[dict]:
    """Every GAN cell's gallery and the strongest pixel attack's (lowest robust accuracy, then largest budget)."""
    pixel = [a for a in attacks if a["threat"] != "semantic"]
    chosen = [a for a in attacks if a["threat"] == "semantic" and rows[a["cell"]].get("gallery")]
    if pixel:
        chosen.append(min(pixel, key=lambda a: (a["attack_outcome"]["robust_accuracy"]["value"] or 0.0,
                                                -float(a["budget"]))))
    return [{"cell": a["cell"], "file": "galleries/" + slug(f"{model}--{defense}--{a['cell']}") + ".png",
             "title": f"{a['cell']} vs {model}+{defense} ({a['evaluation']})"} for a in chosen]


def _entry(model: str, defense: str, items: list[tuple[dict, dict]], dataset: str, provenance: dict) -> dict:
    first = items[0][0]
    attacks = [_attack_record(r) for r, _ in items]
    entry = {
        "dataset": dataset, "board": "overall", "model": model, "defense": defense,
        "defense_info": first.get("defense_info"),
        "teacher": first.get("teacher"),  # distilled from this model: transfer attacks from it are stronger here
        "clean": first["clean"], "val_auc": first["val_auc"], "threshold": first["threshold"],
        "attacks": attacks, "per_image": _per_image(items), "masking_probe": first.get("masking_probe"),
        "detection": first.get("detection"),  # detecting defenses: {detection_rate, false_alarm_rate}
    }
    entry["worst_case_robust_accuracy"], entry["worst_case_over"] = _worst(entry, "overall")
    entry["worst_case_by_threat"] = {b: _worst(entry, b)[0] for b in BOARDS[1:] if board_attacks(entry, b)}
    entry["gan"] = [_gan_row(a) for a in attacks if a["threat"] == "semantic"]
    entry["evaluation"] = {kind: sorted(a["cell"] for a in attacks if a["evaluation"] == kind)
                           for kind in sorted({a["evaluation"] for a in attacks})}
    entry["cost"] = {"train_seconds": first["train_seconds"],
                     "attack_seconds": sum(a["attack_seconds"] or 0.0 for a in attacks),
                     "images_per_s": {a["cell"]: a["images_per_s"] for a in attacks}}
    entry["galleries"] = _galleries(model, defense, attacks, {cell_name(r): r for r, _ in items})
    entry["masking_checks"] = evaluate(entry)
    entry["unreliable"], entry["unreliable_reason"] = verdict(entry["masking_checks"])
    entry.update(train_seconds=first["train_seconds"], n_test=first["n_test"], **provenance)
    return entry


def _worst(entry: dict, board: str) -> tuple[dict, list[str]]:
    """Per-image worst case over a board's cells; without flags, the lowest cell (an upper bound)."""
    attacks = board_attacks(entry, board)
    flags = worst_flags(entry, board)
    if flags is not None:
        worst = rate(int(flags.sum()), len(flags)).to_dict()
    else:
        worst = min((a["attack_outcome"]["robust_accuracy"] for a in attacks), key=lambda r: r["value"] or 0.0)
    return worst, sorted(a["cell"] for a in attacks)


def rank(entries: list[dict]) -> list[dict]:
    """Best worst-case robust accuracy first; then clean AUC, then names."""
    def key(e: dict) -> tuple:
        auc = e["clean"]["auc"].get("value")
        return (-(e["worst_case_robust_accuracy"]["value"] or 0.0), -(auc or 0.0), e["model"], e["defense"])
    return sorted(entries, key=key)


def build_entries(cells: list[tuple[dict, dict]], dataset: str, provenance: dict) -> list[dict]:
    """Group cell rows by (model, defense) into overall entries: per-image worst case, checks, provenance."""
    groups: dict[tuple[str, str], list[tuple[dict, dict]]] = {}
    for row, flags in cells:
        groups.setdefault((row["model"], row["defense"]), []).append((row, flags))
    entries = [_entry(m, d, items, dataset, provenance) for (m, d), items in groups.items()]
    return [to_jsonable(e) for e in rank(entries)]


def board_entries(entries: list[dict], board: str) -> list[dict]:
    """The entries of one threat board (its cells, worst case and reliability only), ranked; [] when empty."""
    if board == "overall":
        return rank(entries)
    out = []
    for e in entries:
        attacks = board_attacks(e, board)
        if not attacks:
            continue
        view = {k: copy.deepcopy(v) for k, v in e.items() if k != "per_image"}
        view.update(board=board, attacks=attacks, gan=e["gan"] if board == "semantic" else [],
                    worst_case_robust_accuracy=e["worst_case_by_threat"][board],
                    worst_case_over=sorted(a["cell"] for a in attacks),
                    galleries=[g for g in e.get("galleries", []) if g["cell"] in {a["cell"] for a in attacks}])
        view["unreliable"], view["unreliable_reason"] = verdict(e["masking_checks"], board)
        out.append(view)
    return rank(out)


def refresh_checks(entries: list[dict]) -> list[dict]:
    """Entries with their gradient-masking checks and `unreliable` re-evaluated (e.g. after a threshold change)."""
    for e in entries:
        e["masking_checks"] = evaluate(e)
        e["unreliable"], e["unreliable_reason"] = verdict(e["masking_checks"])
    return entries


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


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")


def write_leaderboard(folder: Path, entries: list[dict], dataset: str,
                      galleries: dict[str, Path] | None = None) -> Path:
    """Replace folder's leaderboard with one rendered from entries; return the leaderboard.md path.

    galleries maps an entry's gallery file ('galleries/x.png') to the PNG to copy; None keeps the folder's own.
    Everything is built in a staging folder first, so a crash never leaves a half-written leaderboard.
    """
    from benchmark.leaderboard_html import render_html
    from benchmark.leaderboard_plots import render_plots

    folder = Path(folder)
    entries = rank(entries)
    staging = folder.parent / f".{folder.name}.tmp-{time.time_ns()}"
    try:
        for e in entries:
            _write_json(staging / "entries" / f"{e['model']}--{e['defense']}.json", e)
        boards = {b: board_entries(entries, b) for b in BOARDS}
        for board in BOARDS[1:]:
            for e in boards[board]:
                _write_json(staging / "entries" / board / f"{e['model']}--{e['defense']}.json", e)
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
        (staging / "index.html").write_text(render_html(boards, dataset, plots, staging))
        folder.mkdir(parents=True, exist_ok=True)
        for item in sorted(staging.iterdir()):
            target = folder / item.name
            if target.is_dir():
                shutil.rmtree(target)
            item.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder / "leaderboard.md"
