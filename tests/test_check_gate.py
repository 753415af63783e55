"""The CI gate: identical reruns and noise pass; real drops, missing entries and renamed scores fail."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_raw, write_toml
from leaderboard_rows import IDS, PROVENANCE, make_row, matrix, robust_flags

from benchmark.cli import main
from benchmark.leaderboard.board import build_entries
from benchmark.leaderboard.gate import compare, holm


def _entries(*groups: list) -> list[dict]:
    return build_entries([c for g in groups for c in g], "test-set", PROVENANCE)


def _status(comparisons: list) -> dict[tuple[str, str], str]:
    return {(c.entry, c.score): c.status for c in comparisons}


def test_identical_rerun_passes() -> None:
    baseline = _entries(matrix(), matrix("resnet18"))
    result = compare(baseline, copy.deepcopy(baseline))
    assert {c.status for c in result} == {"same"} and not any(c.failed for c in result)
    assert len(result) == 2 * (2 + 6 + 3 + 3)  # clean acc + AUC, 6 cells, 3 worst cases, 3 GAN rates


def test_a_weakened_defense_fails_with_a_clear_row() -> None:
    baseline = _entries(matrix(defense="pgd-at", strength=30))
    weakened = _entries(matrix(defense="pgd-at", strength=-20))  # 50 fewer robust images in every cell
    result = compare(baseline, weakened)
    failed = [c for c in result if c.failed]
    assert {c.score for c in failed} >= {"robust accuracy pgd-linf@2/255", "worst-case robust accuracy (linf)"}
    row = next(c for c in failed if c.score == "robust accuracy pgd-linf@2/255")
    assert row.line().startswith("regressed: resnet10t+pgd-at robust accuracy pgd-linf@2/255: "
                                 "45.0 [38.3, 51.9] -> 20.0 [15.0, 26.1] (McNemar b=50 c=0, p=8.9e-16 (Holm")
    # the GAN fooled rate rose beyond its interval: a regression read from Wilson intervals
    assert _status(result)[("resnet10t+pgd-at", "gan fooled overall")] == "regressed"


def test_noise_passes_and_an_improvement_is_reported() -> None:
    baseline = _entries(matrix())
    cells = matrix()
    flags = robust_flags(60)
    flags[np.flatnonzero(flags)[:3]] = False  # three images lost, three others gained
    flags[np.flatnonzero(~flags & (np.arange(200) >= 20))[:3]] = True
    cells[3] = make_row("resnet10t", "none", "pgd-linf", 2 / 255, flags)
    status = _status(compare(baseline, _entries(cells)))
    assert status[("resnet10t+none", "robust accuracy pgd-linf@2/255")] == "noise"
    assert not any(c.failed for c in compare(baseline, _entries(cells)))
    better = compare(baseline, _entries(matrix(strength=40)))
    assert _status(better)[("resnet10t+none", "robust accuracy pgd-linf@2/255")] == "improved"
    assert not any(c.failed for c in better)


def test_a_renamed_metric_or_a_missing_entry_fails() -> None:
    baseline = _entries(matrix(), matrix("resnet18"))
    cells = [make_row("resnet10t", "none", "pgd" if r["attack"] == "pgd-linf" else r["attack"], r["budget"],
                      f["robust"], threat=r["threat"], access=r["access"]) for r, f in matrix()]
    result = compare(baseline, _entries(cells))
    status = _status(result)
    assert status[("resnet10t+none", "robust accuracy pgd-linf@2/255")] == "missing"
    assert status[("resnet10t+none", "robust accuracy pgd@2/255")] == "new"
    assert status[("resnet18+none", "entry")] == "missing"
    assert "missing: resnet18+none entry: present -> missing (not in the rerun)" in [c.line() for c in result
                                                                                     if c.failed]
    # a metric renamed in the entry format reads as missing too
    renamed = copy.deepcopy(baseline)
    for a in renamed[0]["attacks"]:
        a["attack_outcome"]["robust_acc"] = a["attack_outcome"].pop("robust_accuracy")
    failed = {c.score for c in compare(baseline, renamed) if c.failed}
    assert failed == {f"robust accuracy {c}" for c in ("fgsm@1/255", "fgsm@2/255", "pgd-linf@1/255",
                                                        "pgd-linf@2/255", "square@2/255", "gan")}


def test_other_images_fall_back_to_interval_overlap() -> None:
    baseline = _entries(matrix())
    other_ids = np.array([f"other{i}" for i in range(len(IDS))])
    cells = [make_row("resnet10t", "none", "pgd-linf", 2 / 255, robust_flags(20), ids=other_ids),
             make_row("resnet10t", "none", "fgsm", 2 / 255, robust_flags(75), ids=other_ids)]
    status = {c.score: (c.status, c.test) for c in compare(baseline, _entries(cells))}
    assert status["robust accuracy pgd-linf@2/255"] == ("regressed", "Wilson intervals")
    assert status["robust accuracy fgsm@2/255"] == ("noise", "Wilson intervals")


def test_holm() -> None:
    assert holm([0.001, 0.04, 0.02], 0.05) == [True, True, True]
    assert holm([0.001, 0.04, 0.03], 0.05) == [True, False, False]
    assert holm([0.03, 0.04], 0.05) == [False, False]
    assert holm([], 0.05) == []


@pytest.mark.slow
def test_check_command_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    raw = tiny_raw(tmp_path)
    raw["dataset"].update(options={"count": 128}, split=[0.5, 0.2, 0.3])  # 38 test images
    raw["training"]["epochs"] = 3
    config = write_toml(tmp_path / "gate.toml", raw)
    assert main(["check", "--config", str(config), "--no-progress"]) == 2  # no baseline yet: a user error
    assert "no baseline entries under" in capsys.readouterr().err
    assert main(["check", "--config", str(config), "--update-baseline", "--no-progress"]) == 0
    baseline = tmp_path / "leaderboards" / "tiny-blobs"
    assert (baseline / "entries" / "resnet10t--none.json").is_file() and (baseline / "index.html").is_file()
    capsys.readouterr()
    # an identical rerun (every stage cached) passes
    assert main(["check", "--config", str(config), "--against", str(tmp_path / "leaderboards"), "--no-progress"]) == 0
    assert "check: 0 regressed, 0 missing, 0 improved, 0 noise" in capsys.readouterr().out
    # the same model, deliberately weakened: one epoch at a learning rate 100 times too large
    raw["training"].update(epochs=1, lr=0.3)
    weak = write_toml(tmp_path / "weak.toml", raw)
    assert main(["check", "--config", str(weak), "--baseline", str(baseline), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "regressed: resnet10t+none clean accuracy: " in out
    assert "regressed: resnet10t+none robust accuracy fgsm@2/255: " in out
