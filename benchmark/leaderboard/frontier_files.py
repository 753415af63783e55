"""The frontier's files from its points: frontier.json, the frontier.md table and the frontier.png figure (fooled
rate per direction against the real-vs-fake detector's AUC and 1 - SSIM, one curve per (model, defense))."""
from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.leaderboard.entry import STUDY, STUDY_VIEWS, fmt_auc, fmt_count, fmt_pct, md_text
from benchmark.metrics import to_jsonable

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["FRONTIER_SCHEMA", "RADIOLOGISTS", "frontier_figure", "order_points", "render_frontier_markdown",
           "write_frontier"]

FRONTIER_SCHEMA = 1
RADIOLOGISTS = (0.29, 0.71)  # Zhou et al. 2021: radiologists told real from fake with 29% to 71% accuracy
DIRECTIONS = (("pos_to_neg", "positives made negative"), ("neg_to_pos", "negatives made positive"))


def order_points(points: list[dict]) -> list[dict]:
    """Points from the weakest attack to the strongest (no fidelity term, strength None, last)."""
    return sorted(points, key=lambda p: (p["strength"] is None, p["strength"] or 0.0, p["classifier_weight"],
                                         -p["fidelity_weight"]))


def _curves(points: list[dict]) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = {}
    for p in order_points(points):
        out.setdefault((p["model"], p["defense"]), []).append(p)
    return out


def _value(r: dict | None) -> float | None:
    v = (r or {}).get("value")
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def frontier_figure(points: list[dict], title: str = "") -> Figure:
    """Fooled rate per direction (rows) against visibility (columns: real-vs-fake detector AUC, 1 - SSIM inside
    the breast), one curve per (model, defense) through the grid points in order of attack strength, the config's
    point ringed, the study's per-direction rates as lines and the radiologists' 29-71% accuracy as a band."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 8))
    axes = fig.subplots(2, 2, squeeze=False)
    columns = (("detector AUC (pairs)", lambda p: _value(p["detector_auc"])),
               ("1 - SSIM (breast)", lambda p: p["one_minus_ssim"]))
    curves = _curves(points)
    colours = {k: f"C{i % 10}" for i, k in enumerate(curves)}
    for row, (direction, name) in enumerate(DIRECTIONS):
        study = STUDY[direction]
        for col, (xlabel, xof) in enumerate(columns):
            ax = axes[row][col]
            if col == 0:
                ax.axvspan(*RADIOLOGISTS, color="0.85", zorder=0,
                           label="radiologists told real from fake with 29-71% accuracy (drawn on the AUC axis)")
                ax.set_xlim(0.0, 1.0)
            ax.axhspan(100 * study["lo"], 100 * study["hi"], color="tab:red", alpha=0.08, zorder=0)
            ax.axhline(100 * study["value"], color="tab:red", ls="--", lw=1,
                       label=f"Zhou et al. 2021, this row's direction: {STUDY['pos_to_neg']['successes']}/"
                             f"{STUDY['pos_to_neg']['n']} and {STUDY['neg_to_pos']['successes']}/"
                             f"{STUDY['neg_to_pos']['n']} (pooled {fmt_count(STUDY['overall'])})")
            if col == 0:
                ax.plot([0.5], [100 * study["value"]], marker="*", ms=14, color="tab:red", ls="none",
                        label="Zhou et al. 2021 (radiologists at chance)")
            for (model, defense), mine in curves.items():
                xs, ys, lo, hi, ring = [], [], [], [], []
                for p in mine:
                    x, y = xof(p), _value(p[direction])
                    if x is None or y is None:
                        continue
                    r = p[direction]
                    xs.append(x)
                    ys.append(100 * y)
                    lo.append(100 * (y - (r.get("lo") if r.get("lo") is not None else y)))
                    hi.append(100 * ((r.get("hi") if r.get("hi") is not None else y) - y))
                    ring.append(p["config_point"])
                if not xs:
                    continue
                colour = colours[(model, defense)]
                ax.errorbar(xs, ys, yerr=[lo, hi], color=colour, marker="o", ms=4, capsize=2, lw=1.2,
                            label=f"{model}+{defense}")
                for x, y, r in zip(xs, ys, ring):
                    if r:
                        ax.plot([x], [y], marker="o", ms=11, mfc="none", mec=colour, mew=1.5, ls="none")
            ax.set_ylim(-2, 102)
            ax.grid(alpha=0.3)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"{name}\n% fooled (95% CI)" if col == 0 else "% fooled")
    handles, labels = axes[0][0].get_legend_handles_labels()
    ncol = min(3, max(1, len(labels)))
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=7, frameon=False)
    fig.suptitle(title or "Lesion GAN frontier: fooled rate vs visibility over classifier_weight x fidelity_weight\n"
                          "(ringed: the config's point; each curve runs from the weakest attack to the strongest)",
                 fontsize=10)
    rows = math.ceil(len(labels) / ncol)
    fig.tight_layout(rect=(0, 0.02 + 0.03 * rows, 1, 0.94))  # room for the legend below and the title above
    return fig


def _num(v: float | None, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def render_frontier_markdown(points: list[dict], meta: dict) -> str:
    """frontier.md: the grid, how to read it, and one row per (model, defense, grid point)."""
    cp = meta.get("config_point") or {}
    lines = [f"# Lesion GAN frontier: {meta.get('dataset', '')}", "",
             f"Config {meta.get('config')} ({meta.get('config_digest')}), seed {meta.get('seed')}; `gan` (white-box) "
             f"with classifier_weight in {meta['grid']['classifier_weight']} x fidelity_weight in "
             f"{meta['grid']['fidelity_weight']}; the config's point (classifier_weight "
             f"{cp.get('classifier_weight', 0):g}, fidelity_weight {cp.get('fidelity_weight', 0):g}) is marked *. "
             "Rows run from the weakest attack to the strongest (strength = (adversarial_weight + classifier_weight) "
             "/ fidelity_weight). Fooled counts over originals classified correctly at the entry's operating point, "
             "with 95% Wilson intervals; SSIM inside the breast; the real-vs-fake detector's AUC bootstrapped over "
             "image pairs (the study's radiologists: 29-71% accuracy).", "",
             "| model | defense | classifier_weight | fidelity_weight | strength | positives made negative | "
             "negatives made positive | class-balanced fooled | at the study's mix (44:319) | detector AUC (pairs) | "
             "SSIM (breast) | 1 - SSIM | PSNR dB (breast) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
             f"| Zhou et al. 2021 | - | - | - | - | {fmt_count(STUDY['pos_to_neg'])} | "
             f"{fmt_count(STUDY['neg_to_pos'])} | {fmt_pct(STUDY_VIEWS['balanced'])} | "
             f"{fmt_pct(STUDY_VIEWS['study_mix'])} | radiologists: 29-71% accuracy |  |  |  |"]
    for (model, defense), mine in _curves(points).items():
        for p in mine:
            strength = "inf" if p["strength"] is None else f"{p['strength']:.3g}"
            star = " *" if p["config_point"] else ""
            lines.append(f"| {md_text(model)} | {md_text(defense)} | {p['classifier_weight']:g}{star} | "
                         f"{p['fidelity_weight']:g}{star} | {strength} | {fmt_count(p['pos_to_neg'])} | "
                         f"{fmt_count(p['neg_to_pos'])} | {fmt_pct(p['balanced'])} | {fmt_pct(p['study_mix'])} | "
                         f"{fmt_auc(p['detector_auc'])} | {_num(p['ssim'], '.3f')} | "
                         f"{_num(p['one_minus_ssim'], '.4f')} | {_num(p['psnr'], '.1f')} |")
    if meta.get("failed"):
        lines += ["", "Failed stages (their points are missing):", ""] + [f"- {md_text(f)}" for f in meta["failed"]]
    return "\n".join(lines) + "\n"


def write_frontier(out: Path, points: list[dict], meta: dict) -> dict[str, Path]:
    """Write frontier.json, frontier.md and frontier.png into out (each replaced whole); return their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    points = order_points(points)
    document = to_jsonable({"schema": FRONTIER_SCHEMA, **meta, "written": time.strftime("%Y-%m-%d"),
                            "study": {**STUDY, **STUDY_VIEWS, "radiologist_accuracy": list(RADIOLOGISTS)},
                            "points": points})
    files = {"json": out / "frontier.json", "md": out / "frontier.md", "png": out / "frontier.png"}
    with tempfile.TemporaryDirectory(prefix=".frontier-", dir=out) as tmp:
        staged = {k: Path(tmp) / p.name for k, p in files.items()}
        staged["json"].write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")
        staged["md"].write_text(render_frontier_markdown(points, meta))
        frontier_figure(points).savefig(staged["png"], dpi=90, bbox_inches="tight")
        for key, path in staged.items():
            shutil.move(str(path), files[key])
    return files
