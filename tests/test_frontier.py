"""The lesion GAN frontier: grid configs share cached stages, a tiny 2x1 grid runs end to end, bad flags write
nothing, and the plot marks the study."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import tiny_config, tiny_raw, write_toml
from test_cli import cli

from benchmark.cli import main
from benchmark.config import load_config
from benchmark.errors import BenchmarkError
from benchmark.execution.planner import plan_matrix
from benchmark.leaderboard.frontier import config_point, default_grid, frontier_configs
from benchmark.leaderboard.frontier_files import RADIOLOGISTS, frontier_figure

TINY_GAN = {"identity_steps": 2, "head_steps": 4, "joint_steps": 8, "batch_size": 8, "unet_base": 8,
            "unet_levels": 2, "lr_generator": 5e-3, "fidelity_weight": 10.0}


def _raw(tmp_path: Path) -> dict:
    raw = tiny_raw(tmp_path)
    raw["attacks"] = [{"name": "gan", "options": TINY_GAN}]
    raw["training"] = {"epochs": 1, "batch_size": 16, "lr": 0.003}
    return raw


def _keys(plan: object, kinds: tuple[str, ...]) -> dict[str, str]:
    return {s.label: s.key for s in plan.stages if s.kind in kinds}


def test_default_grid_holds_the_config_point_and_straddles_it() -> None:
    config = load_config(None)  # configs/default.toml: gan with fidelity_weight 25, classifier_weight unset (0)
    assert config_point(config) == (0.0, 25.0)
    classifier, fidelity = default_grid(config)
    assert classifier == [0.0, 1.0, 4.0] and fidelity == [6.25, 25.0, 100.0]
    grid = frontier_configs(config)
    assert len(grid) == 9 and sum(p.is_config_point for p, _ in grid) == 1
    strengths = [p.strength for p, _ in grid]
    assert strengths == sorted(strengths)


def test_grid_points_share_data_and_training_with_the_board_fake_defenses_included(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    raw["defenses"] = ["none", "gan-fakes-relabel"]
    config = tiny_config(tmp_path, defenses=raw["defenses"], attacks=raw["attacks"])
    board = plan_matrix(config)
    for point, matrix in frontier_configs(config, [0, 2], [10, 40]):
        plan = plan_matrix(matrix)
        # the fake-trained defense keeps the board's fakes: its training does not move with the grid point
        assert _keys(plan, ("data", "train")) == _keys(board, ("data", "train"))
        gan_cells = {s.label: s.key for s in plan.stages if s.kind == "attack" and s.label.startswith("attack gan@")}
        same = {label: board_key == gan_cells.get(label) for label, board_key in _keys(board, ("attack",)).items()}
        assert all(same.values()) == point.is_config_point, (point, same)
    assert [p.is_config_point for p, _ in frontier_configs(config, [0, 2], [10, 40])].count(True) == 1


def test_bad_flags_exit_2_with_one_line_and_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = write_toml(tmp_path / "c.toml", _raw(tmp_path))
    out = ["--config", str(config), "--out", str(tmp_path / "out")]
    result = cli("frontier", *out, "--classifier-weight", "1", "-1")  # as a user meets it: a process
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "--classifier-weight -1: a loss weight must lie in [0, 1e+06]" in result.stderr
    for flags, message in ((["--fidelity-weight", "nan"], "--fidelity-weight nan"),
                           (["--models", "resnet81"], "--models resnet81: not a model of the config; did you mean "
                                                      "'resnet10t'?"),
                           (["--defenses", "pgd"], "--defenses pgd: not a defense of the config"),
                           (["--workers", "0"], "--workers 0: must be at least 1")):
        assert main(["frontier", *out, *flags]) == 2
        err = capsys.readouterr().err
        assert err.strip().count("\n") == 0 and message in err, err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()
    assert not (tmp_path / "leaderboards").exists()
    with pytest.raises(BenchmarkError, match="--models"):
        frontier_configs(load_config(config), models=["vgg11"])


def _point(pos: float, neg: float, auc: float, ssim: float, cw: float, fw: float, config: bool = False) -> dict:
    def r(v: float, n: int = 40) -> dict:
        return {"value": v, "lo": max(0.0, v - 0.1), "hi": min(1.0, v + 0.1), "successes": round(v * n), "n": n}
    return {"model": "resnet10t", "defense": "none", "classifier_weight": cw, "fidelity_weight": fw,
            "strength": (1 + cw) / fw, "config_point": config, "pos_to_neg": r(pos), "neg_to_pos": r(neg),
            "detector_auc": {"value": auc, "lo": auc - 0.05, "hi": auc + 0.05}, "ssim": ssim,
            "one_minus_ssim": 1 - ssim}


def test_figure_draws_the_study_band_and_a_curve_per_entry(tmp_path: Path) -> None:
    from matplotlib.patches import Polygon, Rectangle

    points = [_point(0.3, 0.1, 0.55, 0.995, 0, 40), _point(0.6, 0.3, 0.7, 0.99, 0, 10, True),
              _point(0.9, 0.5, 0.9, 0.97, 4, 10)]
    fig = frontier_figure(points)
    axes = fig.axes
    assert len(axes) == 4  # two directions x (detector AUC, 1 - SSIM)
    auc_axes = [ax for ax in axes if ax.get_xlabel().startswith("detector AUC")]
    assert len(auc_axes) == 2
    for ax in auc_axes:
        bands = [p for p in ax.patches if isinstance(p, (Polygon, Rectangle)) and "29-71%" in p.get_label()]
        assert len(bands) == 1
        xs = [x for x, _ in bands[0].get_xy()] if isinstance(bands[0], Polygon) else \
            [bands[0].get_x(), bands[0].get_x() + bands[0].get_width()]
        assert math.isclose(min(xs), RADIOLOGISTS[0]) and math.isclose(max(xs), RADIOLOGISTS[1])
        labels = [line.get_label() for line in ax.get_lines()]
        assert any("Zhou et al. 2021" in label for label in labels)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "resnet10t+none" in legend and any("251/363 = 69.1%" in t for t in legend)
    fig.savefig(tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 10_000


def test_tiny_frontier_runs_writes_and_reuses_the_cache(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = write_toml(tmp_path / "c.toml", _raw(tmp_path))
    out = tmp_path / "frontier"
    code = main(["frontier", "--config", str(config), "--classifier-weight", "0", "1", "--fidelity-weight", "10",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("frontier ")]
    assert [line.split(":")[0] for line in lines[:2]] == ["frontier 1/2", "frontier 2/2"]
    assert "(the config's)" in lines[0]
    for name in ("frontier.json", "frontier.md", "frontier.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "frontier.png").stat().st_size > 10_000
    doc = json.loads((out / "frontier.json").read_text())
    assert [(p["model"], p["defense"], p["classifier_weight"], p["fidelity_weight"]) for p in doc["points"]] == \
        [("resnet10t", "none", 0.0, 10.0), ("resnet10t", "none", 1.0, 10.0)]
    for p in doc["points"]:
        for direction in ("pos_to_neg", "neg_to_pos"):
            r = p[direction]
            assert 0 <= r["value"] <= 1 and r["lo"] <= r["value"] <= r["hi"] and r["n"] > 0
        assert 0 <= p["detector_auc"]["value"] <= 1 and 0 < p["ssim"] <= 1
    assert doc["config_point"] == {"classifier_weight": 0.0, "fidelity_weight": 10.0}
    assert doc["config"] == "c.toml"  # outside the working directory: its name, never a machine's absolute path
    assert doc["study"]["overall"]["successes"] == 251 and doc["study"]["radiologist_accuracy"] == [0.29, 0.71]
    md = (out / "frontier.md").read_text()
    assert md.count("| resnet10t | none |") == 2 and "42/44 = 95.5%" in md
    # one run holds every point: the config's point is the plain `gan` cell, the other a labelled one, and both
    # GANs train in that run (side by side on the workers)
    assert len({p["run_id"] for p in doc["points"]}) == 1
    manifest = json.loads((tmp_path / "runs" / "records" / doc["points"][0]["run_id"] / "manifest.json").read_text())
    assert [s["status"] for s in manifest["stages"] if s["kind"] == "gan"] == ["done", "done"]
    assert sorted(s["cell"]["attack"] for s in manifest["stages"] if s.get("cell")) == ["gan", "gan-c1-f10"]
    # the whole grid again: everything cached, same numbers
    assert main(["frontier", "--config", str(config), "--classifier-weight", "0", "1", "--fidelity-weight", "10",
                 "--out", str(out), "--no-progress"]) == 0
    again = json.loads((out / "frontier.json").read_text())
    assert [p["pos_to_neg"] for p in again["points"]] == [p["pos_to_neg"] for p in doc["points"]]
    last = json.loads((tmp_path / "runs" / "records" / again["points"][1]["run_id"] / "manifest.json").read_text())
    assert {s["status"] for s in last["stages"]} == {"cached"}
    assert not (tmp_path / "leaderboards").exists()  # leaderboard=False: the boards are left alone
