"""GAN cells trained over several seeds on the board: each seed's Wilson intervals, the mean and the spread.

The spread band of a rate is the union of its per-seed 95% intervals; the CI gate calls a GAN rate regressed only
when the rerun's band lies entirely above the baseline's (benchmark/leaderboard/gate.py).
"""
from __future__ import annotations

from html import escape
from typing import Any

from benchmark.leaderboard.entry import fmt_pct, md_text, study_views

__all__ = ["seed_view", "seed_table", "seed_table_html", "RATES"]

RATES = (("pos_to_neg", "positives made negative"), ("neg_to_pos", "negatives made positive"),
         ("study_mix", "at the study's mix (44:319)"), ("overall", "pooled here"))


def _spread(per_seed: list[dict], key: str) -> dict[str, Any]:
    rates = [s[key] for s in per_seed]
    kept = [r for r in rates if r.get("value") is not None and r["value"] == r["value"]]  # None/NaN: no image
    if not kept:
        return {"mean": None, "min": None, "max": None, "band_lo": None, "band_hi": None, "per_seed": rates}
    values = [r["value"] for r in kept]
    return {"mean": sum(values) / len(values), "min": min(values), "max": max(values),
            "band_lo": min(r["lo"] for r in kept), "band_hi": max(r["hi"] for r in kept), "per_seed": rates}


def seed_view(seeds: dict | None) -> dict | None:
    """A score row's `seeds` summary as the board shows it: per operating point and rate, the per-seed intervals,
    their mean, min, max and band (None for a one-seed cell)."""
    if not seeds or seeds.get("n", 1) < 2:
        return None
    out: dict[str, Any] = {"n": seeds["n"]}
    for point in ("threshold", "argmax"):
        per_seed = [{**s, **study_views(s["pos_to_neg"], s["neg_to_pos"])} for s in seeds[point]["per_seed"]]
        out[point] = {key: _spread(per_seed, key) for key, _ in RATES}
    out["detector_auc"] = [((v or {}).get("detector") or {}).get("auc", {}).get("value")
                           for v in seeds.get("visibility") or []]
    return out


def _cell(s: dict) -> str:
    if s["mean"] is None:
        return "n/a"
    seeds = "; ".join(fmt_pct(r) for r in s["per_seed"])
    return f"{100 * s['mean']:.1f}% ({100 * s['min']:.0f}-{100 * s['max']:.0f}; seeds: {seeds})"


_HEAD = ["model", "defense", "attack", "seeds", "operating point", *(name for _, name in RATES)]


def _rows(entries: list[dict]) -> list[list[str]]:
    """One row of plain cells per (GAN cell with several seeds, operating point)."""
    rows = []
    for e in entries:
        for g in e.get("gan", []):
            s = g.get("seeds")
            if not s:
                continue
            for point, label in (("threshold", "validation threshold"), ("argmax", "argmax")):
                rows.append([e["model"], e["defense"], g["attack"], str(s["n"]), label,
                             *(_cell(s[point][k]) for k, _ in RATES)])
    return rows


def seed_table(entries: list[dict]) -> list[str]:
    """Markdown lines: every GAN cell with several seeds, mean (min-max; each seed) per rate, at both operating
    points; [] when no cell has more than one seed."""
    rows = _rows(entries)
    if not rows:
        return []
    return ["GAN cells over several GAN trainings: mean fooled rate (min-max over seeds; each seed's rate). The "
            "tables above show the first seed; one GAN training is not a measurement.", "",
            "| " + " | ".join(_HEAD) + " |", "|" + "---|" * len(_HEAD),
            *("| " + " | ".join(md_text(c) for c in row) + " |" for row in rows)]


def seed_table_html(entries: list[dict]) -> str:
    """The same table for the page ('' when no cell has more than one seed)."""
    rows = _rows(entries)
    if not rows:
        return ""
    body = "".join("<tr>" + "".join(f'<td class="text">{escape(c)}</td>' for c in row) + "</tr>" for row in rows)
    return ('<p class="note">GAN cells over several GAN trainings: mean fooled rate (min-max over seeds; each seed '
            "with its 95% interval). The table above shows the first seed.</p><table><thead><tr>"
            + "".join(f"<th>{escape(h)}</th>" for h in _HEAD) + f"</tr></thead><tbody>{body}</tbody></table>")
