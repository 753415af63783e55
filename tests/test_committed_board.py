"""The committed leaderboards are what the head's code produces: a board made by other stage code is stale."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.registry import get_component
from benchmark.stages import STAGE_FUNCTIONS, stage_version

ROOT = Path(__file__).resolve().parent.parent
BOARDS = [ROOT / "leaderboards" / "synthetic-mammo", ROOT / "leaderboards" / "ci" / "synthetic-mammo",
          ROOT / "leaderboards" / "study" / "synthetic-mammo"]
_KINDS = {"model": "models", "defense": "defenses", "attack": "attacks", "dataset": "datasets"}


def _head_version(name: str) -> str:
    kind, _, entry = name.partition(":")
    if kind == "stage":
        return stage_version(entry)
    return get_component(_KINDS[kind], entry).version


def stale_versions(entry: dict) -> list[str]:
    """The stages and entries whose recorded code version differs from the head's ('stage:train: a -> b')."""
    versions = entry.get("code_versions") or {}
    if not versions:
        return ["no code versions recorded (made before they were)"]
    return [f"{name}: {recorded} -> {_head_version(name)}" for name, recorded in sorted(versions.items())
            if recorded != _head_version(name)]


@pytest.mark.parametrize("board", BOARDS, ids=[str(b.relative_to(ROOT)) for b in BOARDS])
def test_committed_entries_were_produced_by_the_heads_stage_code(board: Path) -> None:
    files = sorted((board / "entries").glob("*.json"))
    assert files, f"no committed entries under {board}"
    for path in files:
        entry = json.loads(path.read_text())
        stale = stale_versions(entry)
        assert not stale, (f"{path.relative_to(ROOT)} is stale: {'; '.join(stale)}; regenerate it with `make run` "
                           "(the CI board: `python -m benchmark check --update-baseline`; the study board: `python -m "
                           "benchmark run --matrix --config configs/study.toml`) and commit")
        assert {f"stage:{k}" for k in STAGE_FUNCTIONS if k not in ("gan", "fakes")} <= set(entry["code_versions"])


def test_the_staleness_check_can_fail() -> None:
    entry = {"code_versions": {"stage:train": "000000000000", "model:resnet10t": get_component("models",
                                                                                         "resnet10t").version}}
    assert stale_versions(entry) == [f"stage:train: 000000000000 -> {stage_version('train')}"]
    assert stale_versions({}) == ["no code versions recorded (made before they were)"]


def test_the_page_and_markdown_name_the_commit_they_were_produced_at() -> None:
    for board in BOARDS:
        commit = json.loads(next((board / "entries").glob("*.json")).read_text())["git_commit"]
        assert commit and "+dirty" not in commit
        assert f"Produced at commit `{commit}`" in (board / "leaderboard.md").read_text()
        assert f"Produced at commit {commit}." in (board / "index.html").read_text()
