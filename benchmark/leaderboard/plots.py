"""Leaderboard plots with matplotlib (Agg, no pyplot): robust accuracy vs budget, and a model x attack heatmap."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.leaderboard.entry import BOARD_TITLES, cell_columns, cell_flags, slug
from benchmark.metrics import rate, worst_case

__all__ = ["render_plots"]


def _x(threat: str, budget: float) -> float:
    return budget * 255 if threat == "linf" else budget


def _worst_by_budget(entry: dict, threat: str) -> list[tuple[float, dict]]:
    """Per budget: the per-image worst case over the threat's attacks at that budget (or the lowest cell)."""
    flags = cell_flags(entry)
    out = []
    for budget in sorted({float(a["budget"]) for a in entry["attacks"] if a["threat"] == threat}):
        cells = [a for a in entry["attacks"] if a["threat"] == threat and float(a["budget"]) == budget]
        if all(a["cell"] in flags for a in cells):
            robust = worst_case({a["cell"]: flags[a["cell"]] for a in cells})
            out.append((budget, rate(int(robust.sum()), len(robust)).to_dict()))
        else:
            out.append((budget, min((a["attack_outcome"]["robust_accuracy"] for a in cells),
                                    key=lambda r: r["value"] or 0.0)))
    return out


def _curve(ax: object, points: list[tuple[float, dict]], threat: str, label: str) -> None:
    points = [(b, r) for b, r in points if r.get("value") is not None]
    if not points:
        return
    x = np.array([_x(threat, b) for b, _ in points])
    y = np.array([100 * r["value"] for _, r in points])
    lo = np.array([100 * (r["lo"] if r.get("lo") is not None else r["value"]) for _, r in points])
    hi = np.array([100 * (r["hi"] if r.get("hi") is not None else r["value"]) for _, r in points])
    ax.errorbar(x, y, yerr=[y - lo, hi - y], marker="o", capsize=3, label=label)


def _budget_plot(entries: list[dict], threat: str, path: Path) -> bool:
    from matplotlib.figure import Figure

    attacks = sorted({a["attack"] for e in entries for a in e["attacks"] if a["threat"] == threat})
    if not attacks:
        return False
    panels = [*attacks, "worst case"] if len(attacks) > 1 else attacks
    fig = Figure(figsize=(4.2 * len(panels), 3.6))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        for e in entries:
            label = f"{e['model']}+{e['defense']}"
            if panel == "worst case":
                points = _worst_by_budget(e, threat)
            else:
                points = sorted((float(a["budget"]), a["attack_outcome"]["robust_accuracy"])
                                for a in e["attacks"] if a["attack"] == panel)
            _curve(ax, points, threat, label)
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("budget (x/255)" if threat == "linf" else "budget (L2, [0,1] scale)")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("robust accuracy, % (95% CI)")
    axes[-1].legend(fontsize=7, loc="best")
    fig.suptitle(f"{BOARD_TITLES[threat]}: robust accuracy vs budget", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return True


def _heatmap(entries: list[dict], defense: str, path: Path) -> None:
    from matplotlib.figure import Figure

    mine = [e for e in entries if e["defense"] == defense]
    models = sorted({e["model"] for e in mine})
    columns = cell_columns(mine)
    values = np.full((len(models), len(columns)), np.nan)
    for e in mine:
        by_cell = {a["cell"]: a["attack_outcome"]["robust_accuracy"]["value"] for a in e["attacks"]}
        for j, (c, _, _) in enumerate(columns):
            if by_cell.get(c) is not None:
                values[models.index(e["model"]), j] = 100 * by_cell[c]
    fig = Figure(figsize=(1.2 + 0.9 * len(columns), 1.4 + 0.5 * len(models)))
    ax = fig.subplots()
    image = ax.imshow(values, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(columns)), [c for c, _, _ in columns], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(models)), models, fontsize=8)
    for i in range(len(models)):
        for j in range(len(columns)):
            if not np.isnan(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.0f}", ha="center", va="center", fontsize=8,
                        color="white" if values[i, j] < 60 else "black")
    fig.colorbar(image, ax=ax, label="robust accuracy %")
    ax.set_title(f"defense: {defense}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def render_plots(entries: list[dict], folder: Path) -> list[dict]:
    """Write the PNG plots into folder; return [{file (relative to the leaderboard), title, kind}]."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plots = []
    for threat in ("linf", "l2"):
        name = f"robust_vs_budget_{threat}.png"
        if _budget_plot(entries, threat, folder / name):
            plots.append({"file": f"{folder.name}/{name}", "kind": "budget",
                          "title": f"{BOARD_TITLES[threat]}: robust accuracy vs budget per (model, defense)"})
    for defense in sorted({e["defense"] for e in entries}):
        name = f"heatmap_{slug(defense)}.png"
        _heatmap(entries, defense, folder / name)
        plots.append({"file": f"{folder.name}/{name}", "kind": "heatmap",
                      "title": f"Robust accuracy (%), model x attack, defense {defense}"})
    return plots
