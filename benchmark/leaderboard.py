"""Leaderboards as data: one JSON entry per (model, defense), rendered to Markdown; ranked by worst case."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from benchmark.config import budget_label
from benchmark.metrics import to_jsonable, worst_case_rate

__all__ = ["build_entries", "write_leaderboard", "render_markdown"]


def build_entries(cells: list[tuple[dict, dict]], dataset: str, provenance: dict) -> list[dict]:
    """Group cell rows by (model, defense) into leaderboard entries with a per-image worst case."""
    groups: dict[tuple[str, str], list[tuple[dict, dict]]] = {}
    for row, flags in cells:
        groups.setdefault((row["model"], row["defense"]), []).append((row, flags))
    entries = []
    for (model, defense), items in groups.items():
        first = items[0][0]
        worst = worst_case_rate({f"{r['attack']}@{r['budget']}": f["robust"] for r, f in items})
        entries.append({
            "dataset": dataset, "model": model, "defense": defense,
            "clean": first["clean"], "val_auc": first["val_auc"], "threshold": first["threshold"],
            "worst_case_robust_accuracy": worst.to_dict(),
            "worst_case_over": sorted({f"{r['attack']}@{budget_label(r['budget'])}" for r, _ in items}),
            "attacks": [{k: r[k] for k in ("attack", "budget", "threat", "access", "adaptive", "attack_outcome",
                                           "perturbation", "attack_seconds", "images_per_s")} for r, _ in items],
            "train_seconds": first["train_seconds"], "n_test": first["n_test"],
            "unreliable": False, "unreliable_reason": None,
            **provenance,
        })
    entries.sort(key=lambda e: (-(e["worst_case_robust_accuracy"]["value"] or 0), e["model"], e["defense"]))
    return [to_jsonable(e) for e in entries]


def _pct(rate: dict | None) -> str:
    if not rate or rate.get("value") is None:
        return "n/a"
    lo, hi = rate.get("lo"), rate.get("hi")
    ci = f" [{100 * lo:.1f}, {100 * hi:.1f}]" if lo is not None and hi is not None else ""
    return f"{100 * rate['value']:.1f}{ci}"


def render_markdown(entries: list[dict], dataset: str) -> str:
    """The leaderboard as a Markdown table (percent, 95% intervals in brackets), best worst case first."""
    columns = sorted({(a["attack"], a["budget"]) for e in entries for a in e["attacks"]},
                     key=lambda c: (c[0], c[1]))
    head = ["#", "model", "defense", "clean acc", "AUC", "worst-case robust acc"]
    head += [f"{a}@{budget_label(b)}" for a, b in columns] + ["train s"]
    lines = [f"# Leaderboard: {dataset}", "",
             "Robust accuracy in percent with 95% Wilson intervals (AUC: bootstrap), on the test split. "
             "Worst case is per image: an image counts as robust only if every attack in the matrix failed on it.",
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rank, e in enumerate(entries, 1):
        by_cell = {(a["attack"], a["budget"]): a for a in e["attacks"]}
        auc = e["clean"]["auc"]
        auc_text = "n/a" if auc.get("value") is None else f"{auc['value']:.3f} [{auc['lo']:.3f}, {auc['hi']:.3f}]"
        row = [str(rank), e["model"], e["defense"] + (" (unreliable)" if e["unreliable"] else ""),
               _pct(e["clean"]["accuracy"]), auc_text, _pct(e["worst_case_robust_accuracy"])]
        row += [_pct(by_cell[c]["attack_outcome"]["robust_accuracy"]) if c in by_cell else "" for c in columns]
        row.append(f"{e['train_seconds']:.0f}")
        lines.append("| " + " | ".join(row) + " |")
    if entries:
        e = entries[0]
        lines += ["", f"Config `{e['config_digest']}`, seed {e['seed']}, commit `{e['git_commit']}`, "
                      f"{e['date']}, device {e['device']}."]
    return "\n".join(lines) + "\n"


def write_leaderboard(folder: Path, entries: list[dict], dataset: str) -> Path:
    """Replace folder's entries with these, and render leaderboard.json and leaderboard.md; return the .md path."""
    entries_dir = folder / "entries"
    staging = folder.parent / f".{folder.name}.tmp-{time.time_ns()}"
    (staging / "entries").mkdir(parents=True)
    for e in entries:
        (staging / "entries" / f"{e['model']}--{e['defense']}.json").write_text(json.dumps(e, indent=1) + "\n")
    (staging / "leaderboard.json").write_text(json.dumps(entries, indent=1) + "\n")
    (staging / "leaderboard.md").write_text(render_markdown(entries, dataset))
    folder.mkdir(parents=True, exist_ok=True)
    if entries_dir.exists():
        shutil.rmtree(entries_dir)
    for item in ("entries", "leaderboard.json", "leaderboard.md"):
        (staging / item).replace(folder / item)
    shutil.rmtree(staging, ignore_errors=True)
    return folder / "leaderboard.md"
