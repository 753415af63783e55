"""The contributor path: the example defense plugin installs with pip, is listed with its source, and runs a cell."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_raw, write_toml

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "examples" / "defense-plugin"


def _python(*args: str, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.mark.slow
def test_defense_plugin_installs_lists_and_runs_one_cell(tmp_path: Path) -> None:
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed: pip cannot build the plugin with --no-build-isolation")
    source = shutil.copytree(PLUGIN, tmp_path / "plugin-src")  # the build leaves build/ and egg-info behind
    site = tmp_path / "site"  # a target folder on PYTHONPATH: the venv itself is not changed
    pip = _python("-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
                  "--disable-pip-version-check", "--target", str(site), str(source), env=dict(os.environ))
    assert pip.returncode == 0, pip.stderr
    assert list(site.glob("mammo_noise_defense-0.1.0.dist-info/entry_points.txt"))
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
                        "COLUMNS": "240", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}

    listed = _python("-m", "benchmark", "list", "defenses", env=env)
    assert listed.returncode == 0, listed.stderr
    line = next(ln for ln in listed.stdout.splitlines() if "gaussian-noise-aug" in ln)
    assert "Gaussian noise augmentation" in line
    assert "plugin mammo-noise-defense (entry point gaussian-noise-aug)" in line

    card = _python("-m", "benchmark", "list", "defenses", "gaussian-noise-aug", env=env)
    assert card.returncode == 0, card.stderr
    assert "sigma" in card.stdout and "0.03" in card.stdout and "[0, 1]" in card.stdout

    contract = _python("-m", "pytest", "-q", "-p", "no:cacheprovider", str(source / "test_contract.py"),
                       env=env | {"PYTHONPATH": os.pathsep.join([str(source), env["PYTHONPATH"]])})
    assert contract.returncode == 0, contract.stdout + contract.stderr

    typo = tiny_raw(tmp_path / "typo")
    typo["defenses"] = [{"name": "gaussian-noise-aug", "options": {"sigam": 0.05}}]
    bad = _python("-m", "benchmark", "run", "--matrix", "--config", str(write_toml(tmp_path / "typo.toml", typo)),
                  "--no-progress", env=env)
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "defenses.gaussian-noise-aug.options.sigam: unknown option; did you mean 'sigma'?" in bad.stderr
    assert not (tmp_path / "typo" / "runs").exists()  # refused at plan time: nothing written

    raw = tiny_raw(tmp_path)
    raw["dataset"]["options"]["count"], raw["training"]["epochs"] = 128, 3
    raw["defenses"] = [{"name": "gaussian-noise-aug", "options": {"sigma": 0.05}}]
    raw["attacks"] = [{"name": "fgsm", "budgets": ["2/255"]}]
    config = write_toml(tmp_path / "tiny.toml", raw)
    result = _python("-m", "benchmark", "run", "--model", "resnet10t", "--defense", "gaussian-noise-aug",
                     "--attack", "fgsm", "--config", str(config), "--no-progress", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = tmp_path / "runs" / "records" / (tmp_path / "runs" / "records" / "LATEST").read_text().strip()
    table = pd.read_csv(run_dir / "results.csv")
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["model"], row["defense"], row["attack"]) == ("resnet10t", "gaussian-noise-aug", "fgsm")
    assert row["clean_accuracy"] > 0.7 and row["attack_outcome_robust_accuracy"] <= row["clean_accuracy"]
    assert not row["adaptive"]  # a differentiable defense is attacked with plain gradients
    train = next((tmp_path / "runs" / "objects").rglob("train.json"))
    assert json.loads(train.read_text())["defense_info"]["options"] == {"sigma": 0.05}
