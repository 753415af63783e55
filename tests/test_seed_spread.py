"""GAN cells over several seeds on the board (mean, min-max, per-seed intervals) and in the CI gate (the band)."""
from __future__ import annotations

import numpy as np
from leaderboard_rows import LABELS, PROVENANCE, clean_correct, matrix, robust_flags

from benchmark.attacking.seeds import seed_summary
from benchmark.leaderboard.board import build_entries
from benchmark.leaderboard.gate import compare
from benchmark.leaderboard.markdown import _gan_table
from benchmark.leaderboard.seed_spread import seed_table


def _scores(pred: np.ndarray) -> np.ndarray:
    return np.where(pred == 1, 0.9, 0.1)


def _with_seeds(cells: list, robust_per_seed: list[int]) -> list:
    """matrix() with its GAN cell's first seed robust on robust_per_seed[0] images, further seeds on the others."""
    correct = clean_correct()
    clean = _scores(np.where(correct, LABELS, 1 - LABELS))
    advs = [_scores(np.where(robust_flags(n) & correct, LABELS, 1 - LABELS)) for n in robust_per_seed]
    out = []
    for row, flags in cells:
        if row["attack"] == "gan":
            row = {**row, "seeds": seed_summary(LABELS, clean, advs, 0.5)}
        out.append((row, flags))
    return out


def _entries(cells: list) -> list[dict]:
    return build_entries(cells, "test-set", PROVENANCE)


def test_the_board_shows_each_seed_the_mean_and_the_spread() -> None:
    entry = _entries(_with_seeds(matrix(), [50, 30, 70]))[0]
    gan = entry["gan"][0]
    s = gan["seeds"]
    assert s["n"] == 3
    overall = s["threshold"]["overall"]  # 180 correctly classified originals; 130, 150, 110 of them fooled
    assert [r["successes"] for r in overall["per_seed"]] == [130, 150, 110]
    assert abs(overall["mean"] - 130 / 180) < 1e-12
    assert (overall["min"], overall["max"]) == (110 / 180, 150 / 180)
    assert overall["band_lo"] == overall["per_seed"][2]["lo"] and overall["band_hi"] == overall["per_seed"][1]["hi"]
    lines = seed_table([entry])
    assert len(lines) == 4 + 2  # text, blank, head, rule, one row per operating point
    assert "72.2% (61-83; seeds: 72.2 [65.3, 78.2]; 83.3 [77.2, 88.1]; 61.1 [53.8, 67.9]) |" in lines[4]
    assert lines[4] in _gan_table([entry])
    assert seed_table(_entries(matrix())) == []  # one-seed cells: no spread table


def test_the_gate_reads_a_gan_rate_against_the_spread_across_seeds() -> None:
    baseline = _entries(_with_seeds(matrix(), [50, 20, 80]))  # seeds fool 130, 160, 100 of 180
    # a rerun whose first seed fools 160 (beyond its own Wilson interval) but inside the seeds' band: noise
    inside = compare(baseline, _entries(_with_seeds(matrix(strength=-30), [20, 40, 60])))
    status = {(c.entry, c.score): c for c in inside}
    c = status[("resnet10t+none", "gan fooled overall")]
    assert c.status == "noise" and c.test == "Wilson intervals over GAN seeds"
    without = compare(_entries(matrix()), _entries(matrix(strength=-30)))  # the same shift with one seed fails
    assert {(c.score, c.status) for c in without} >= {("gan fooled overall", "regressed")}
    # every seed of the rerun fools (nearly) everything: beyond the band, a regression
    beyond = compare(baseline, _entries(_with_seeds(matrix(strength=-50), [0, 0, 2])))
    assert {(c.score, c.status) for c in beyond} >= {("gan fooled overall", "regressed")}


def test_the_page_has_the_spread_table() -> None:
    from benchmark.leaderboard.seed_spread import seed_table_html

    entry = _entries(_with_seeds(matrix(), [50, 30, 70]))[0]
    html = seed_table_html([entry])
    assert html.count("<tr>") == 3 and "61.1 [53.8, 67.9]" in html
    assert seed_table_html(_entries(matrix())) == ""
