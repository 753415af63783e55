"""The lesion GAN's frontier: how often it fools each (model, defense) against how visible its edits are, over a
grid of the generator's loss weights (classifier_weight x fidelity_weight).

Each grid point is a `gan` attack whose options are the config's with the two weights replaced, labelled by its
weights; all points run as one matrix (the config's models and defenses) through the engine on the config's store,
so their GAN trainings run side by side on the workers, and data and training stages, and the config's own grid
point (plain `gan`, the board's cells), come from the cache. The points are read back the way the leaderboard reads
a GAN cell (benchmark/leaderboard/source.py and board.py) and written as frontier.json, frontier.md and frontier.png
(benchmark/leaderboard/frontier_files.py).
"""
from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmark.config import AttackSpec, MatrixConfig
from benchmark.errors import BenchmarkError
from benchmark.leaderboard.frontier_files import order_points, write_frontier

__all__ = ["GridPoint", "combined_matrix", "config_point", "default_grid", "frontier_configs", "point_label",
           "points_from_run", "run_frontier", "FrontierResult"]

ATTACK = "gan"  # the white-box lesion GAN: regenerated against every (model, defense) at each grid point
WEIGHTS = ("classifier_weight", "fidelity_weight")


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
    return order_points(out)


def _check_out(out: Path) -> None:
    probe_at = out
    while not probe_at.exists():
        probe_at = probe_at.parent
    if not probe_at.is_dir() or not os.access(probe_at, os.W_OK):
        raise BenchmarkError(f"--out {out}: cannot be written ({probe_at} is not a writable folder)")


def _shown_path(path: object) -> str:
    """A config path as committed files show it: relative to the working directory, else its file name (no
    machine's absolute paths in a committed frontier)."""
    try:
        return str(Path(str(path)).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return Path(str(path)).name


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
