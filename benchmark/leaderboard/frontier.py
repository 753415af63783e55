"""The lesion GAN's frontier: how often it fools each (model, defense) against how visible its edits are, over a
grid of the generator's loss weights (classifier_weight x fidelity_weight).

Each grid point is a `gan` attack whose options are the config's with the two weights replaced, labelled by its
weights; all points run as one matrix (the config's models and defenses) through the engine on the config's store,
so their GAN trainings run side by side on the workers, and data and training stages, and the config's own grid
point (plain `gan`, the board's cells), come from the cache. The points are read back the way the leaderboard reads
a GAN cell (benchmark/leaderboard/source.py and board.py) and written as frontier.json, frontier.md and frontier.png.
"""
from __future__ import annotations

import difflib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.config import AttackSpec, MatrixConfig
from benchmark.errors import BenchmarkError
from benchmark.leaderboard.entry import STUDY, STUDY_VIEWS, fmt_auc, fmt_count, fmt_pct, md_text
from benchmark.metrics import to_jsonable

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["FRONTIER_SCHEMA", "RADIOLOGISTS", "GridPoint", "combined_matrix", "config_point", "default_grid",
           "frontier_configs", "point_label",
           "frontier_figure", "points_from_run", "render_frontier_markdown", "run_frontier", "write_frontier"]

FRONTIER_SCHEMA = 1
ATTACK = "gan"  # the white-box lesion GAN: regenerated against every (model, defense) at each grid point
WEIGHTS = ("classifier_weight", "fidelity_weight")
RADIOLOGISTS = (0.29, 0.71)  # Zhou et al. 2021: radiologists told real from fake with 29% to 71% accuracy
DIRECTIONS = (("pos_to_neg", "positives made negative"), ("neg_to_pos", "negatives made positive"))


@dataclass(frozen=True)
class GridPoint:
    """One (classifier_weight, fidelity_weight) of the grid and the options of its `gan` attack."""

    classifier_weight: float
    fidelity_weight: float
    options: dict
    adversarial_weight: float
    is_config_point: bool  # the base config's own weights: its cells are the board's

    @property
    def strength(self) -> float:
        """(adversarial + classifier weight) / fidelity weight: the attack terms of the generator loss against the
        fidelity term (inf when fidelity_weight is 0)."""
        attack = self.adversarial_weight + self.classifier_weight
        return attack / self.fidelity_weight if self.fidelity_weight > 0 else math.inf

    def label(self) -> str:
        return f"classifier_weight={self.classifier_weight:g} fidelity_weight={self.fidelity_weight:g}"


def _schedule_defaults() -> dict[str, Any]:
    from benchmark.gan.schedule import SCHEDULE_OPTIONS

    return {k: o.default for k, o in SCHEDULE_OPTIONS.items()}


def _base_options(config: MatrixConfig) -> dict:
    """The options of the config's `gan` attack as written ({} when it has none: the schedule's defaults)."""
    found = [a for a in config.attacks if a.name == ATTACK]
    return dict(found[0].options) if found else {}


def config_point(config: MatrixConfig) -> tuple[float, float]:
    """(classifier_weight, fidelity_weight) the config's `gan` attack runs with."""
    options, defaults = _base_options(config), _schedule_defaults()
    return tuple(float(options.get(k, defaults[k])) for k in WEIGHTS)  # type: ignore[return-value]


def default_grid(config: MatrixConfig) -> tuple[list[float], list[float]]:
    """classifier_weight 0, 1, 4 and fidelity_weight a quarter, once and four times the config's, each with the
    config's own value: a 3x3 grid around the config's point (0 and 25 for configs/default.toml)."""
    classifier, fidelity = config_point(config)
    return sorted({0.0, 1.0, 4.0, classifier}), sorted({fidelity / 4, fidelity, fidelity * 4})


def _check_weights(name: str, values: Sequence[float]) -> list[float]:
    from benchmark.gan.schedule import SCHEDULE_OPTIONS

    high = SCHEDULE_OPTIONS[name].high
    for v in values:
        if not math.isfinite(v) or v < 0 or v > high:
            raise BenchmarkError(f"--{name.replace('_', '-')} {v:g}: a loss weight must lie in [0, {high:g}]")
    return sorted({float(v) for v in values})


def _pick(kind: str, available: list[str], wanted: Sequence[str] | None) -> list[str]:
    if not wanted:
        return available
    for name in wanted:
        if name not in available:
            close = difflib.get_close_matches(name, available, n=1, cutoff=0.4)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise BenchmarkError(f"--{kind} {name}: not a {kind[:-1]} of the config{hint} (its {kind}: "
                                 f"{', '.join(available)})")
    return list(dict.fromkeys(wanted))


def _anchor(config: MatrixConfig, models: list[str]) -> AttackSpec | None:
    """The attack that keeps fake-based defenses as the board trained them. Such a defense trains on fakes made with
    the schedule of the matrix's first GAN attack (benchmark/execution/planner.py); a grid point's `gan` would change
    that schedule, and with it the defense's training. So the config's first GAN attack comes first, unchanged (a
    `gan-transfer` with the config's `gan` options when that is `gan` itself); its cells are not frontier points."""
    from benchmark.registry import get_component

    gan_attacks = [a for a in config.attacks if "fakes" in get_component("attacks", a.name).card.needs]
    first = gan_attacks[0] if gan_attacks else AttackSpec("gan-transfer")
    options = dict(first.options)
    if first.name == ATTACK:
        first = AttackSpec("gan-transfer")
        transfer = [a for a in config.attacks if a.name == "gan-transfer"]
        surrogate = (transfer[0].options.get("surrogate") if transfer else None) or models[0]
        options["surrogate"] = surrogate
    if "surrogate" in options and options["surrogate"] not in models:
        options["surrogate"] = models[0]
    return replace(first, options=options)


def frontier_configs(config: MatrixConfig, classifier_weights: Sequence[float] | None = None,
                     fidelity_weights: Sequence[float] | None = None, models: Sequence[str] | None = None,
                     defenses: Sequence[str] | None = None) -> list[tuple[GridPoint, MatrixConfig]]:
    """One matrix per grid point, ordered by attack strength; flags are checked before anything is planned."""
    from benchmark.registry import get_component

    default_c, default_f = default_grid(config)
    cws = _check_weights("classifier_weight", default_c if classifier_weights is None else classifier_weights)
    fws = _check_weights("fidelity_weight", default_f if fidelity_weights is None else fidelity_weights)
    chosen_models = _pick("models", [m.name for m in config.models], models)
    chosen_defenses = _pick("defenses", [d.name for d in config.defenses], defenses)
    base = _base_options(config)
    effective = {**_schedule_defaults(), **base}
    adversarial = float(effective["adversarial_weight"])
    here = config_point(config)
    needs_fakes = any("fakes" in get_component("defenses", d).card.needs for d in chosen_defenses)
    anchor = _anchor(config, chosen_models) if needs_fakes else None
    out = []
    for cw in cws:
        for fw in fws:
            options = dict(base)
            for key, value in zip(WEIGHTS, (cw, fw)):
                if value != float(effective[key]):  # the config's own values stay as written: same cache keys
                    options[key] = value
            point = GridPoint(cw, fw, options, adversarial, (cw, fw) == here)
            attacks = ((anchor,) if anchor is not None else ()) + (AttackSpec(ATTACK, (), options),)
            matrix = replace(config, models=tuple(m for m in config.models if m.name in chosen_models),
                             defenses=tuple(d for d in config.defenses if d.name in chosen_defenses),
                             attacks=attacks, sanity_budget=0.0)  # the sanity cell is the board's business
            out.append((point, matrix))
    return sorted(out, key=lambda pm: (pm[0].strength, pm[0].classifier_weight, -pm[0].fidelity_weight))


def point_label(point: GridPoint) -> str | None:
    """The cell name of a grid point's `gan` attack in the combined run: None (plain `gan`) for the config's own point,
    so that its cells are the board's; else e.g. gan-c0.5-f10."""
    return None if point.is_config_point else f"{ATTACK}-c{point.classifier_weight:g}-f{point.fidelity_weight:g}"


def combined_matrix(grid: list[tuple[GridPoint, MatrixConfig]]) -> tuple[MatrixConfig, dict[str, GridPoint]]:
    """All grid points as one matrix (one labelled `gan` attack per point, after the anchor), so that the engine runs
    their GAN trainings side by side on its workers; and each cell name's grid point."""
    matrix = grid[0][1]
    anchor = tuple(a for a in matrix.attacks if a.name != ATTACK)
    attacks, by_name = [], {}
    for point, _ in grid:
        spec = AttackSpec(ATTACK, (), point.options, point_label(point))
        attacks.append(spec)
        by_name[spec.cell_name] = point
    return replace(matrix, attacks=anchor + tuple(attacks)), by_name


def points_from_run(run_dir: Path, store_root: Path, points: dict[str, GridPoint]) -> list[dict]:
    """The frontier points of the grid's recorded run: its `gan` cells (by cell name), read as the leaderboard
    reads them."""
    from benchmark.leaderboard.source import load_run

    source = load_run(run_dir, store_root)
    out = []
    for entry in source.entries():
        for g in entry.get("gan") or []:
            point = points.get(g["attack"])
            if point is None:
                continue
            ssim = g.get("ssim")
            out.append({
                "model": entry["model"], "defense": entry["defense"],
                "classifier_weight": point.classifier_weight, "fidelity_weight": point.fidelity_weight,
                "strength": point.strength if math.isfinite(point.strength) else None,
                "config_point": point.is_config_point, "options": point.options, "run_id": run_dir.name,
                "evaluation": g["evaluation"],
                "pos_to_neg": g["pos_to_neg"], "neg_to_pos": g["neg_to_pos"], "overall": g["overall"],
                "balanced": g["balanced"], "study_mix": g["study_mix"], "argmax": g.get("argmax"),
                "fooled_undetected": g.get("fooled_undetected"),
                "detector_auc": g["detector_auc"], "detector_accuracy": g.get("detector_accuracy"),
                "ssim": ssim, "one_minus_ssim": None if ssim is None else 1.0 - ssim, "psnr": g.get("psnr"),
                "area_changed": g.get("area_changed"), "visibility_region": g.get("visibility_region"),
                "clean_auc": (entry.get("clean") or {}).get("auc"), "unreliable": bool(entry.get("unreliable")),
                "gan_seconds": g.get("seconds"),
            })
    return _order(out)


def _check_out(out: Path) -> None:
    probe_at = out
    while not probe_at.exists():
        probe_at = probe_at.parent
    if not probe_at.is_dir() or not os.access(probe_at, os.W_OK):
        raise BenchmarkError(f"--out {out}: cannot be written ({probe_at} is not a writable folder)")


@dataclass
class FrontierResult:
    """What `run_frontier` produced: the points, the failed stages, the grid's one run record, the written files."""

    points: list[dict]
    failed: list[str]
    run_dir: Path
    files: dict[str, Path]


def run_frontier(config: MatrixConfig, out: Path, classifier_weights: Sequence[float] | None = None,
                 fidelity_weights: Sequence[float] | None = None, models: Sequence[str] | None = None,
                 defenses: Sequence[str] | None = None, workers: int | None = None, progress: bool = False,
                 say: Callable[[str], None] | None = None) -> FrontierResult:
    """Run every grid point through the engine (cached stages are not recomputed) and write the frontier in out.
    Every flag, name and folder is checked before any work: a bad one raises BenchmarkError and writes nothing."""
    from benchmark.execution.matrix import check_writable, run
    from benchmark.execution.planner import plan_matrix

    grid = frontier_configs(config, classifier_weights, fidelity_weights, models, defenses)
    matrix, by_name = combined_matrix(grid)
    plan_matrix(matrix)  # unknown entries, bad options, incompatible cells: before anything is written
    check_writable(config.run.store, "store")
    _check_out(Path(out))
    say = say or (lambda line: print(line, flush=True))
    result = run(matrix, progress=progress, leaderboard=False, workers=workers)  # the points' GANs side by side
    failed = [f"{o.status} {o.label}: {o.error}" for o in result.failed]
    points = points_from_run(result.run_dir, config.run.store, by_name)
    for i, (point, _) in enumerate(grid, 1):
        found = sum(p["classifier_weight"] == point.classifier_weight and p["fidelity_weight"] == point.fidelity_weight
                    for p in points)
        mark = " (the config's)" if point.is_config_point else ""
        say(f"frontier {i}/{len(grid)}: {point.label()}{mark}: {found} cells")
    counts = {s: sum(o.status == s for o in result.outcomes.values()) for s in ("done", "cached", "failed", "skipped")}
    say("frontier: stages " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        + f"; {result.seconds:.1f} s; run {result.run_dir.name}")
    meta = {"config": _shown_path(config.source), "config_digest": config.digest(), "dataset": config.dataset.name,
            "image_size": config.dataset.image_size, "seed": config.run.seed, "gan_options": _base_options(config),
            "config_point": dict(zip(WEIGHTS, config_point(config))),
            "grid": {"classifier_weight": sorted({p.classifier_weight for p, _ in grid}),
                     "fidelity_weight": sorted({p.fidelity_weight for p, _ in grid})},
            "models": [m.name for m in grid[0][1].models], "defenses": [d.name for d in grid[0][1].defenses],
            "failed": failed}
    files = write_frontier(Path(out), points, meta)
    return FrontierResult(points, failed, result.run_dir, files)


def _order(points: list[dict]) -> list[dict]:
    return sorted(points, key=lambda p: (p["strength"] is None, p["strength"] or 0.0, p["classifier_weight"],
                                         -p["fidelity_weight"]))


def _curves(points: list[dict]) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = {}
    for p in _order(points):
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


def _shown_path(path: object) -> str:
    """A config path as committed files show it: relative to the working directory, else its file name (no
    machine's absolute paths in a committed frontier)."""
    try:
        return str(Path(str(path)).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return Path(str(path)).name


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
    points = _order(points)
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
