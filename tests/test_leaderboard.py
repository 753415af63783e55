"""Leaderboard entries, threat boards, Markdown, CSV and the files written; `leaderboard` regenerates from the store."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_raw, write_toml
from leaderboard_rows import PROBE, PROVENANCE, make_row, matrix, robust_flags

from benchmark.cli import main
from benchmark.errors import BenchmarkError
from benchmark.execution.records import resolve_run
from benchmark.leaderboard.board import (
    board_entries,
    build_entries,
    load_entries,
    render_markdown,
    write_leaderboard,
)
from benchmark.leaderboard.entry import decode_flags
from benchmark.leaderboard.markdown import render_csv
from benchmark.leaderboard.source import load_run


def _entries() -> list[dict]:
    cells = matrix("resnet10t", "none") + matrix("resnet18", "none", strength=-40) + \
        matrix("resnet10t", "jpeg", strength=30, adaptive=True, probe={**PROBE, "grad_zero_fraction": 0.5})
    return build_entries(cells, "test-set", PROVENANCE)


def test_an_entry_holds_every_metric_its_evaluation_and_provenance() -> None:
    entries = _entries()
    # ranked by robust balanced accuracy; the jpeg entry (zero gradients) is listed after them, without a rank
    assert [(e["model"], e["defense"], e["rank"]) for e in entries] == [
        ("resnet10t", "none", 1), ("resnet18", "none", 2), ("resnet10t", "jpeg", None)]
    assert entries[2]["robust_balanced_accuracy"]["value"] > entries[0]["robust_balanced_accuracy"]["value"]
    e = entries[0]
    assert e["robust_balanced_accuracy"]["value"] == pytest.approx(0.25)  # 25 of 100 positives, 25 of 100 negatives
    assert e["robust_balanced_accuracy"]["lo"] < 0.25 < e["robust_balanced_accuracy"]["hi"]
    assert e["robust_balanced_accuracy_by_threat"]["linf"]["value"] == pytest.approx(0.3)
    assert e["operating_point"]["threshold"] == 0.5 and e["schema"] == 2
    assert e["worst_case_robust_accuracy"]["successes"] == 50  # per image: the GAN cell's 50 are a subset of all
    assert e["worst_case_by_threat"]["linf"]["successes"] == 60 and e["worst_case_by_threat"]["semantic"]["n"] == 200
    assert e["evaluation"] == {"black-box": ["square@2/255"], "white-box": ["fgsm@1/255", "fgsm@2/255", "gan",
                                                                           "pgd-linf@1/255", "pgd-linf@2/255"]}
    assert entries[2]["evaluation"]["adaptive white-box (BPDA/EOT)"][0] == "fgsm@1/255"
    assert {k: e[k] for k in PROVENANCE} == PROVENANCE
    assert e["clean"]["auc"]["lo"] <= e["clean"]["auc"]["value"] <= e["clean"]["auc"]["hi"]
    gan = e["gan"][0]
    assert (gan["pos_to_neg"]["successes"], gan["pos_to_neg"]["n"]) == (65, 90)
    assert gan["ssim"] == 0.97 and gan["detector_auc"] == {"value": 0.71, "lo": 0.6, "hi": 0.8}
    # both directions at 65/90: balanced and re-weighted to the study's 44:319 mix agree; argmax is reported too
    assert gan["balanced"]["value"] == pytest.approx(65 / 90) == gan["study_mix"]["value"]
    assert gan["argmax"]["overall"]["successes"] == 130 and gan["argmax"]["study_mix"]["lo"] < 65 / 90
    # per-image flags with hashed ids: pairable across runs, nothing identifying
    assert len(e["per_image"]["ids_sha256"]) == 200 and "img0000" not in json.dumps(e)
    assert decode_flags(e["per_image"]["robust"]["fgsm@2/255"]).sum() == 80
    assert [g["cell"] for g in e["galleries"]] == ["gan", "pgd-linf@2/255"]  # GAN and the strongest pixel attack
    assert entries[2]["unreliable"] and entries[2]["unreliable_reason"].startswith("zero gradients: zero input")
    assert [a["cell"] for a in e["sanity"]] == ["pgd-linf@32/255"] and "pgd-linf@32/255" not in e["per_image"]["robust"]


def test_threat_boards_rank_on_their_own_cells() -> None:
    entries = _entries()
    linf = board_entries(entries, "linf")
    assert [a["cell"] for a in linf[0]["attacks"]] == ["fgsm@1/255", "fgsm@2/255", "pgd-linf@1/255",
                                                       "pgd-linf@2/255", "square@2/255"]
    assert linf[0]["worst_case_robust_accuracy"]["successes"] == 60 and linf[0]["gan"] == []
    assert [e["rank"] for e in linf] == [1, 2, None]
    assert "per_image" not in linf[0]
    semantic = board_entries(entries, "semantic")
    assert [a["cell"] for e in semantic for a in e["attacks"]] == ["gan"] * 3
    assert board_entries(entries, "l2") == []


def test_markdown_has_every_board_the_study_table_and_checks() -> None:
    text = render_markdown(_entries(), "test-set")
    assert "## Overall (every attack)" in text and "## Pixel L-inf" in text and "## GAN (semantic)" in text
    assert "## Pixel L2" not in text
    assert "| - | resnet10t | jpeg ⚠ |" in text and "| 2 | resnet18 | none |" in text
    assert "| listed, not ranked: zero gradients: zero input gradients on 50% of 64 validation images |" in text
    assert "Produced at commit `deadbeef`" in text and "every attack aims at that same threshold" in text
    assert "42/44 = 95.5% [84.9, 98.7] | 209/319 = 65.5% [60.1, 70.5] | 80.5" in text
    assert "| resnet10t | none | gan (white-box) | 65/90 = 72.2% [62.2, 80.4] |" in text
    assert "45.0 [38.3, 51.9]ᴮ" in text and "75.0 [68.6, 80.5]†" in text  # black-box and adaptive marks
    assert ("- resnet10t + jpeg: **zero-gradients** (demotes, model-level; [why](docs/checks.md#zero-gradients)): "
            "zero gradients: zero input gradients on 50% of 64 validation images") in text
    assert "At argmax (P(positive) >= 0.5), the study's operating point:" in text
    assert "| 80.5 [74.5, 83.5] | 69.1 [64.3, 73.6] | 251/363" in text  # the study: balanced, its own mix, pooled
    assert "Config `abc123def456`, seed 0, commit `deadbeef`" in text


def test_csv_has_one_row_per_board_entry_with_intervals() -> None:
    entries = _entries()
    boards = {b: board_entries(entries, b) for b in ("overall", "linf", "l2", "semantic")}
    rows = list(csv.DictReader(io.StringIO(render_csv(boards))))
    assert [(r["board"], r["rank"]) for r in rows][:4] == [("overall", "1"), ("overall", "2"), ("overall", ""),
                                                           ("linf", "1")]
    assert len(rows) == 9
    first = rows[0]
    assert float(first["worst_case_robust_accuracy_lo"]) < float(first["worst_case_robust_accuracy"])
    assert first["evaluation[square@2/255]"] == "black-box" and first["unreliable"] == "False"
    assert rows[2]["unreliable"] == "True" and rows[2]["unreliable_reason"].startswith("zero gradients")
    assert float(first["robust_balanced_accuracy"]) == pytest.approx(0.25)
    assert float(first["pos_to_neg[gan]"]) == pytest.approx(65 / 90)
    assert float(first["study_mix_argmax[gan]"]) == pytest.approx(65 / 90)


def test_write_leaderboard_files_and_rewrites(tmp_path: Path) -> None:
    entries = _entries()
    gallery = tmp_path / "g.png"
    gallery.write_bytes(b"\x89PNG fake")
    sources = {g["file"]: gallery for e in entries for g in e["galleries"]}
    folder = tmp_path / "board"
    assert write_leaderboard(folder, entries, "test-set", sources) == folder / "leaderboard.md"
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert names == sorted(["entries/resnet10t--jpeg.json", "entries/resnet10t--none.json",
                            "entries/resnet18--none.json", *(f"entries/{b}/{m}.json" for b in ("linf", "semantic")
                                                             for m in ("resnet10t--jpeg", "resnet10t--none",
                                                                       "resnet18--none")),
                            "leaderboard.json", "leaderboard.md", "leaderboard.csv", "index.html",
                            "plots/robust_vs_budget_linf.png", "plots/heatmap_none.png", "plots/heatmap_jpeg.png",
                            *sources])
    assert load_entries(folder) == entries
    assert "per_image" not in json.loads((folder / "leaderboard.json").read_text())[0]
    # re-rendering from entries alone keeps the galleries; a smaller matrix leaves no stale entry behind
    write_leaderboard(folder, entries[1:], "test-set")
    assert (folder / sources.popitem()[0]).is_file()
    assert sorted(p.name for p in (folder / "entries").glob("*.json")) == ["resnet10t--jpeg.json",
                                                                           "resnet18--none.json"]
    assert not list(tmp_path.glob(".board.tmp-*"))


def test_a_bad_entry_file_fails_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "entries").mkdir()
    (tmp_path / "entries" / "x--y.json").write_text("<html>not json</html>")
    with pytest.raises(BenchmarkError, match=r"entries/x--y.json: not a leaderboard entry"):
        load_entries(tmp_path)
    with pytest.raises(BenchmarkError, match="no leaderboard entries under"):
        load_entries(tmp_path / "nowhere")


def test_cells_scored_on_different_images_keep_no_per_image_flags() -> None:
    cells = [make_row("m", "d", "fgsm", 1 / 255, robust_flags(100)),
             make_row("m", "d", "fgsm", 2 / 255, robust_flags(50), ids=np.array([f"x{i}" for i in range(200)]))]
    (entry,) = build_entries(cells, "test-set", PROVENANCE)
    assert entry["per_image"] is None and entry["worst_case_robust_accuracy"]["successes"] == 50


@pytest.mark.slow
def test_a_run_writes_the_leaderboard_and_the_command_regenerates_it(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    config = write_toml(tmp_path / "tiny.toml", tiny_raw(tmp_path))
    assert main(["leaderboard", "--config", str(config)]) == 2
    assert "no recorded run of" in capsys.readouterr().err
    assert main(["run", "--config", str(config), "--no-progress"]) == 0
    folder = tmp_path / "leaderboards" / "tiny-blobs"
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert Path("galleries/resnet10t--none--fgsm@8-255.png") in before and Path("index.html") in before
    run = load_run(resolve_run(tmp_path / "runs", "latest"), tmp_path / "runs")
    row = run.cells[0][0]
    assert row["masking_probe"]["n"] > 0 and row["masking_probe"]["grad_norm_median"] > 0
    assert "gallery" not in row  # pixel galleries are drawn by the leaderboard, from the stored attack
    entry = json.loads((folder / "entries" / "resnet10t--none.json").read_text())
    assert [c["check"] for c in entry["masking_checks"]] == [
        "did-not-learn", "zero-gradients", "gradients-blocked", "random-inference", "black-box-beats-white-box",
        "budget-raises-robustness", "large-budget-sanity", "attack-failed"]
    # every stage behind the entry is named with its code version (the cache key's), for the staleness test
    assert {"stage:data", "stage:train", "stage:attack", "stage:score", "model:resnet10t", "attack:fgsm"} <= \
        set(entry["code_versions"])
    for name in ("leaderboard.md", "index.html", "entries"):
        path = folder / name
        path.unlink() if path.is_file() else __import__("shutil").rmtree(path)
    assert main(["leaderboard", "--config", str(config)]) == 0
    after = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after.keys() == before.keys()
    assert all(after[k] == before[k] for k in before if k.suffix != ".png")  # PNG metadata may differ
    assert main(["leaderboard", "--config", str(config), "--from-entries"]) == 0
    assert (folder / "leaderboard.md").read_bytes() == before[Path("leaderboard.md")]


def test_a_detecting_defense_reports_detection_and_false_alarms() -> None:
    detection = {"detection_rate": {"value": 0.8, "lo": 0.7, "hi": 0.87, "successes": 80, "n": 100},
                 "false_alarm_rate": {"value": 0.05, "lo": 0.02, "hi": 0.11, "successes": 5, "n": 100},
                 "auc": {"value": 0.91, "lo": 0.87, "hi": 0.95}}
    cells = matrix(defense="gan-fakes-detect")
    for row, _ in cells:
        row["detection"] = detection
        if row["attack"] == "gan":
            row["attack_outcome"]["fooled_undetected"] = {"value": 0.1, "lo": 0.05, "hi": 0.2, "successes": 10,
                                                          "n": 100}
    entries = build_entries(cells, "test-set", PROVENANCE)
    assert entries[0]["detection"] == detection
    assert entries[0]["gan"][0]["fooled_undetected"]["successes"] == 10
    text = render_markdown(entries, "test-set")
    assert ("| resnet10t | gan-fakes-detect | 80/100 = 80.0% [70.0, 87.0] | 5/100 = 5.0% [2.0, 11.0] | "
            "0.910 [0.870, 0.950] |") in text
    gan_line = [line for line in text.splitlines() if line.startswith("| resnet10t | gan-fakes-detect | gan (")][0]
    assert "| 10/100 = 10.0% [5.0, 20.0] |" in gan_line  # fooled and not flagged, next to overall fooled



@pytest.mark.parametrize("bad", ["../../x", "a/b", "..", "<b>x</b>"])
def test_names_never_become_paths_or_markup(tmp_path: Path, bad: str) -> None:
    entries = _entries()
    entries[0]["defense"] = bad
    folder = tmp_path / "deep" / "board"
    with pytest.raises(BenchmarkError, match="refused as file names; use 1-64 letters"):
        write_leaderboard(folder, entries, "test-set", {})
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # nothing written, inside the folder or outside
    md = render_markdown([dict(entries[0], defense="<img src=x onerror=alert(1)>|x")], "test-set")
    assert "<img" not in md and "&lt;img src=x onerror=alert(1)&gt;\\|x" in md
