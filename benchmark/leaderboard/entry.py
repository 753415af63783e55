"""What a leaderboard entry holds, and the small helpers every view of it shares: cell names, per-image flags,
threat boards, how each attack was run, and the study's reference numbers."""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from benchmark.config import budget_label
from benchmark.metrics import combined_rate, rate, worst_case

__all__ = [
    "BOARDS",
    "BOARD_TITLES",
    "STUDY",
    "STUDY_POSITIVE_SHARE",
    "STUDY_VIEWS",
    "board_attacks",
    "cell_columns",
    "cell_flags",
    "cell_name",
    "decode_flags",
    "encode_flags",
    "evaluation",
    "fmt_auc",
    "fmt_count",
    "fmt_pct",
    "hash_ids",
    "md_text",
    "slug",
    "standing",
    "study_views",
    "worst_flags",
]

BOARDS = ("overall", "linf", "l2", "semantic")  # one leaderboard per threat, and one over every attack
BOARD_TITLES = {"overall": "Overall (every attack)", "linf": "Pixel L-inf", "l2": "Pixel L2",
                "semantic": "GAN (semantic)"}

# Zhou et al., Nature Communications 2021: fooled counts over correctly classified originals.
STUDY = {"pos_to_neg": rate(42, 44).to_dict(), "neg_to_pos": rate(209, 319).to_dict(),
         "overall": rate(251, 363).to_dict()}
STUDY_POSITIVE_SHARE = 44 / 363  # the study's fooled counts: 44 positives and 319 negatives classified correctly


def study_views(pos_to_neg: dict, neg_to_pos: dict) -> dict:
    """The fooled rate over both directions as the study's table can be compared: class-balanced, and re-weighted
    to the study's mix of correctly classified originals (44 positives, 319 negatives), with MOVER intervals."""
    return {"balanced": combined_rate(pos_to_neg, neg_to_pos, 0.5),
            "study_mix": combined_rate(pos_to_neg, neg_to_pos, STUDY_POSITIVE_SHARE)}


def standing(entry: dict) -> str:
    """Why an unranked entry is listed, or a ranked one's marks ('' for neither)."""
    if entry.get("unreliable"):
        return "listed, not ranked: " + (entry.get("unreliable_reason") or "")
    return "; ".join(f"mark: {m}" for m in entry.get("marks") or [])


# the study's overall, class-balanced and at its own mix (which equals its pooled 251/363)
STUDY_VIEWS = study_views(STUDY["pos_to_neg"], STUDY["neg_to_pos"])


def cell_name(attack: dict) -> str:
    """'fgsm@2/255' for a pixel attack, the attack's name alone for a semantic (GAN) one."""
    if attack.get("threat") == "semantic":
        return attack["attack"]
    return f"{attack['attack']}@{budget_label(float(attack['budget']))}"


def slug(text: str) -> str:
    """A file-name-safe version of a cell or entry name ('fgsm@2/255' -> 'fgsm@2-255')."""
    return "".join(c if c.isalnum() or c in "-_.@+" else "-" for c in text)


def md_text(text: object) -> str:
    """Text for a Markdown table cell: pipes escaped, HTML-special characters as entities, one line."""
    out = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
    return " ".join(out.split())


def evaluation(access: str, adaptive: bool) -> str:
    """How an attack was run against the deployed model: white-box, adaptive white-box, transfer or black-box."""
    if access == "white-box":
        return "adaptive white-box (BPDA/EOT)" if adaptive else "white-box"
    return access


def hash_ids(ids: Any) -> list[str]:
    """Image ids as 12-hex-digit SHA-256 prefixes: enough to pair images across runs, nothing to identify them."""
    return [hashlib.sha256(str(i).encode()).hexdigest()[:12] for i in np.asarray(ids).tolist()]


def encode_flags(flags: Any) -> str:
    """Per-image booleans as a '0'/'1' string (compact, diffable JSON)."""
    return "".join("1" if f else "0" for f in np.asarray(flags, dtype=bool).tolist())


def decode_flags(text: str) -> np.ndarray:
    """The inverse of `encode_flags`."""
    return np.frombuffer(text.encode(), dtype=np.uint8) == ord("1")


def board_attacks(entry: dict, board: str) -> list[dict]:
    """The entry's attack cells that belong to a board ('overall' takes all)."""
    return [a for a in entry["attacks"] if board == "overall" or a["threat"] == board]


def cell_flags(entry: dict) -> dict[str, np.ndarray]:
    """Per-image robust flags of each cell of an entry (empty when the entry has none stored)."""
    robust = (entry.get("per_image") or {}).get("robust") or {}
    return {name: decode_flags(text) for name, text in robust.items()}


def worst_flags(entry: dict, board: str) -> np.ndarray | None:
    """Per-image worst case over a board's cells, or None when flags are missing."""
    flags = cell_flags(entry)
    names = [cell_name(a) for a in board_attacks(entry, board)]
    if not names or any(n not in flags for n in names):
        return None
    return worst_case({n: flags[n] for n in names})


def fmt_pct(r: dict | None, interval: bool = True) -> str:
    """A rate dict as percent with its 95% interval: '57.5 [49.8, 64.9]'; 'n/a' when undefined."""
    if not r or r.get("value") is None:
        return "n/a"
    lo, hi = r.get("lo"), r.get("hi")
    ci = f" [{100 * lo:.1f}, {100 * hi:.1f}]" if interval and lo is not None and hi is not None else ""
    return f"{100 * r['value']:.1f}{ci}"


def fmt_count(r: dict | None) -> str:
    """A rate dict as the study writes it: '42/44 = 95.5% [84.9, 98.7]'."""
    if not r or r.get("value") is None:
        return f"0/{(r or {}).get('n', 0)}"
    lo, hi = r.get("lo"), r.get("hi")
    ci = f" [{100 * lo:.1f}, {100 * hi:.1f}]" if lo is not None and hi is not None else ""
    return f"{r['successes']}/{r['n']} = {100 * r['value']:.1f}%{ci}"


def fmt_auc(auc: dict | None) -> str:
    """An AUC dict with its bootstrap interval: '0.926 [0.886, 0.960]'."""
    if not auc or auc.get("value") is None:
        return "n/a"
    if auc.get("lo") is None or auc.get("hi") is None:
        return f"{auc['value']:.3f}"
    return f"{auc['value']:.3f} [{auc['lo']:.3f}, {auc['hi']:.3f}]"


def cell_columns(entries: list[dict]) -> list[tuple[str, str, float]]:
    """(cell, attack, budget) of every cell any entry has, ordered by threat, attack and budget."""
    order = {b: i for i, b in enumerate(BOARDS)}
    cells = {(a["cell"] if "cell" in a else cell_name(a), a["attack"], float(a["budget"]), a["threat"])
             for e in entries for a in e["attacks"]}
    return [(c, a, b) for c, a, b, _ in sorted(cells, key=lambda c: (order.get(c[3], 9), c[1], c[2]))]
