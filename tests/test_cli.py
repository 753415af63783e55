"""The command line as a user meets it: exit codes, one-line errors, nothing written on bad input, resume."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_raw, write_toml

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmark", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=os.environ | {"PYTHONUNBUFFERED": "1"})


def test_help_and_list() -> None:
    assert cli("--help").returncode == 0
    listed = cli("list")
    assert listed.returncode == 0
    for name in ("resnet10t", "fgsm", "none", "tiny-blobs", "plugin tinyplugin", "built-in models/resnet.py"):
        assert name in listed.stdout


def test_bad_config_exits_2_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    raw = tiny_raw(tmp_path)
    raw["run"]["devise"] = "cpu"
    result = cli("run", "--matrix", "--config", str(write_toml(tmp_path / "bad.toml", raw)))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "run.devise: unknown key (did you mean 'device'?)" in result.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "leaderboards").exists()


def test_unknown_entry_exits_2_and_suggests(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "c.toml", tiny_raw(tmp_path))
    result = cli("run", "--config", str(config), "--model", "resnet81", "--attack", "fgsm", "--defense", "none")
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown model 'resnet81'; did you mean 'resnet18'")
    assert "(known: " in result.stderr and result.stderr.strip().count("\n") == 0
    assert not (tmp_path / "runs").exists()


def test_unwritable_output_exits_2(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder")
    raw = tiny_raw(tmp_path)
    raw["run"]["store"] = str(tmp_path / "afile" / "runs")
    result = cli("run", "--config", str(write_toml(tmp_path / "c.toml", raw)))
    assert result.returncode == 2
    assert f"store folder {tmp_path}/afile/runs cannot be created: {tmp_path}/afile is a file" in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_single_cell_then_show(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "c.toml", tiny_raw(tmp_path))
    result = cli("run", "--config", str(config), "--model", "resnet18", "--attack", "fgsm", "--defense", "none",
                 "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "single cell: leaderboards are left as they are" in result.stdout
    assert not (tmp_path / "leaderboards").exists()
    shown = cli("show", "latest", "--config", str(config))
    assert shown.returncode == 0 and "resnet18" in shown.stdout and "fgsm" in shown.stdout
    missing = cli("show", "no-such-run", "--config", str(config))
    assert missing.returncode == 2 and "no run 'no-such-run'" in missing.stderr


def test_failed_cells_exit_1(tmp_path: Path) -> None:
    raw = tiny_raw(tmp_path)
    raw["attacks"] = [{"name": "broken", "budgets": ["1/255"]}, {"name": "fgsm", "budgets": ["1/255"]}]
    result = cli("run", "--config", str(write_toml(tmp_path / "c.toml", raw)), "--no-progress")
    assert result.returncode == 1
    assert "failed attack broken@1/255 vs resnet10t+none: RuntimeError: this attack is broken on purpose" in \
        result.stdout.replace("\n", " ")
    assert (tmp_path / "leaderboards" / "tiny-blobs" / "leaderboard.md").exists()


@pytest.mark.slow
def test_sigkill_mid_matrix_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    def config(name: str) -> Path:
        raw = tiny_raw(tmp_path / name)
        raw["training"]["epochs"] = 3
        raw["models"] = ["resnet10t", "resnet18"]
        return write_toml(tmp_path / f"{name}.toml", raw)

    killed_cfg = config("killed")
    objects = tmp_path / "killed" / "runs" / "objects"
    proc = subprocess.Popen([sys.executable, "-m", "benchmark", "run", "--config", str(killed_cfg), "--no-progress"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(objects.glob("*/*/_artifact.json"))) < 2:  # data + first model
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished_before = len(list(objects.glob("*/*/_artifact.json")))
    assert 2 <= finished_before < 11, "the kill should land mid-matrix"

    resumed = cli("run", "--config", str(killed_cfg), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    latest = (tmp_path / "killed" / "runs" / "records" / "LATEST").read_text().strip()
    manifest = json.loads((tmp_path / "killed" / "runs" / "records" / latest / "manifest.json").read_text())
    assert manifest["counts"]["cached"] == finished_before
    assert manifest["counts"]["done"] == 11 - finished_before

    clean_cfg = config("clean")
    assert cli("run", "--config", str(clean_cfg), "--no-progress").returncode == 0
    timing = ["attack_seconds", "images_per_s", "train_seconds"]
    a = pd.read_csv(tmp_path / "killed" / "runs" / "records" / latest / "results.csv").drop(columns=timing)
    clean_latest = (tmp_path / "clean" / "runs" / "records" / "LATEST").read_text().strip()
    b = pd.read_csv(tmp_path / "clean" / "runs" / "records" / clean_latest / "results.csv").drop(columns=timing)
    pd.testing.assert_frame_equal(a, b)
