"""Config gaps found by review: each fails at load or plan time with exit 2, one line, and nothing written."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import tiny_raw, write_toml

from benchmark.cli import main


def _run(tmp_path: Path, raw: dict, capsys: pytest.CaptureFixture, text: bytes | None = None) -> tuple[int, str]:
    path = tmp_path / "gap.toml"
    if text is None:
        write_toml(path, raw)
    else:
        path.write_bytes(text)
    code = main(["run", "--matrix", "--config", str(path), "--no-progress"])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r["training"].update(epochs=0), r"training.epochs: must lie in \[1, 10000\], got 0"),
    (lambda r: r["models"][0].update(epochs=-3), r"models\[0\].epochs: must lie in \[1, 10000\], got -3"),
    (lambda r: r["run"].update(seed=-1), r"run.seed: must lie in \[0, 4294967295\], got -1"),
    (lambda r: r["dataset"].update(image_size=100000), r"dataset.image_size: must lie in \[32, 4096\], got 100000"),
    (lambda r: r["attacks"][0].update(budgets=[]), r"attacks\[0\].budgets: is empty; list at least one budget"),
    (lambda r: r["training"].update(weight_decay=-0.1), r"training.weight_decay: must lie in \[0.0, 10.0\]"),
    (lambda r: r["attack"].update(batch_size=0), r"attack.batch_size: must lie in \[1, 65536\], got 0"),
    (lambda r: r["dataset"].update(name="dicom-folder", options={"labels": "l.csv"}),
     r"dataset.options.root is missing: dicom-folder reads a local copy"),
    (lambda r: r["dataset"].update(name="dicom-folder", options={"root": "/nonexistent-folder-x"}),
     r"dataset.options.root = '/nonexistent-folder-x' is not a folder"),
    (lambda r: r["dataset"].update(name="cbis-ddsm", options={"root": ".", "roi_masks": "yes"}),
     r"dataset.options.roi_masks = 'yes' is invalid for cbis-ddsm: expected true or false"),
    (lambda r: r["dataset"].update(name="synthetic-mammo", options={"count": 1}),
     r"dataset.options.count = 1 is invalid for synthetic-mammo"),
    (lambda r: r.update(defenses=[{"name": "random-noise-eot", "options": {"sigam": 0.1}}]),  # a plugin defense
     r"defenses.random-noise-eot.options.sigam: unknown option; did you mean 'sigma'\?"),
    (lambda r: r.update(defenses=[{"name": "random-noise-eot", "options": {"sigma": -1}}]),
     r"defenses.random-noise-eot.options.sigma: must be >= 0, got -1"),
    (lambda r: r.update(attacks=[{"name": "pgd-linf", "budgets": ["1/255"], "options": {"steps": 0}}]),
     r"attacks.pgd-linf.options.steps: must be >= 1, got 0"),
    (lambda r: r["dataset"]["options"].update(cuont=3), r"dataset.options.cuont is not an option of tiny-blobs; "
                                                         r"did you mean 'count'\?"),
    (lambda r: r["models"][0].update(checkpoint="/nonexistent/weights.pt"),
     r"models\[0\].checkpoint: '/nonexistent/weights.pt' is not a file"),
])
def test_gap_fails_before_work(tmp_path: Path, capsys: pytest.CaptureFixture, mutate, message: str) -> None:
    raw = tiny_raw(tmp_path)
    mutate(raw)
    code, err = _run(tmp_path, raw, capsys)
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "gap.toml" in err
    assert re.search(message, err), err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "leaderboards").exists()  # nothing written


def test_config_not_utf8_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = _run(tmp_path, {}, capsys, text=b'[run]\nname = "caf\xe9"\n')
    assert code == 2 and len(err.splitlines()) == 1
    assert "gap.toml: not UTF-8 text (byte 17" in err and "save the config as UTF-8" in err
    assert not (tmp_path / "runs").exists()
