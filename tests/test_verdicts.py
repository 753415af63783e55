"""Verdicts a reviewer can trust, end to end on a real (tiny) matrix: who is ranked, who is listed and why."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import tiny_config

from benchmark.execution.matrix import run


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[tuple[str, str], dict], Path]:
    """resnet10t and a constant classifier x honest and dishonest defenses, FGSM plus the sanity cell."""
    tmp = tmp_path_factory.mktemp("verdicts")
    config = tiny_config(tmp, models=["resnet10t", "constant"],
                         defenses=["none", "round-8bit", "random-noise-eot", "no-grad-wrap"],
                         attacks=[{"name": "fgsm", "budgets": ["2/255"]}], attack={"sanity_budget": "32/255"})
    result = run(config, progress=False)
    folder = result.leaderboard.parent
    entries = {(e["model"], e["defense"]): e for e in
               (json.loads(p.read_text()) for p in (folder / "entries").glob("*.json"))}
    return entries, folder


@pytest.mark.slow
def test_an_honest_model_is_ranked_and_reaches_chance_at_a_large_budget(verdicts) -> None:
    entries, _ = verdicts
    honest = entries[("resnet10t", "none")]
    assert not honest["unreliable"], honest["unreliable_reason"]
    assert honest["rank"] in (1, 2) and honest["marks"] == []  # beside the random defense, the only other ranked
    sanity = honest["sanity"][0]
    assert sanity["cell"] == "pgd-linf@32/255" and sanity["robust_balanced_accuracy"]["value"] < 0.1
    assert {a["cell"] for a in honest["attacks"]} == {"fgsm@2/255"}  # the sanity cell ranks on no board


@pytest.mark.slow
def test_a_constant_classifier_scores_chance_and_is_never_ranked(verdicts) -> None:
    entries, _ = verdicts
    constant = entries[("constant", "none")]
    assert constant["robust_balanced_accuracy"]["value"] == pytest.approx(0.5)
    assert constant["rank"] is None and "did not learn" in constant["unreliable_reason"]


@pytest.mark.slow
def test_rounding_to_8_bits_is_demoted_for_zero_gradients_random_noise_with_eot_is_ranked_with_a_mark(verdicts):
    entries, folder = verdicts
    rounded = entries[("resnet10t", "round-8bit")]
    assert rounded["rank"] is None and rounded["unreliable_reason"].startswith("zero gradients")
    noisy = entries[("resnet10t", "random-noise-eot")]
    assert noisy["rank"] is not None and not noisy["unreliable"], noisy["unreliable_reason"]
    assert noisy["marks"] and noisy["marks"][0].startswith("random defense attacked with EOT (4 draws")
    board = (folder / "leaderboard.md").read_text()
    assert f"| {noisy['rank']} | resnet10t | random-noise-eot ◇ |" in board
    assert "| - | resnet10t | round-8bit ⚠ |" in board


@pytest.mark.slow
def test_blocked_gradients_keep_the_entry_on_every_board_with_the_reason(verdicts) -> None:
    entries, folder = verdicts
    blocked = entries[("resnet10t", "no-grad-wrap")]
    assert blocked["rank"] is None and blocked["unreliable_reason"].startswith("gradients blocked")
    (failure,) = [f for f in blocked["failed_cells"] if f["cell"] == "fgsm@2/255"]
    assert "defense no-grad-wrap (tinyplugin.NoGradWrap) blocks gradients" in failure["error"]
    assert "TransformedModel" in failure["error"]
    linf = json.loads((folder / "entries" / "linf" / "resnet10t--no-grad-wrap.json").read_text())
    assert linf["unreliable"] and linf["rank"] is None
    assert "no-grad-wrap" in (folder / "leaderboard.csv").read_text()
