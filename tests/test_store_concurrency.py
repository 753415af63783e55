"""Several runs of one matrix on one store at the same time: every artifact computed once, every run recorded."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_raw, write_toml

from benchmark.execution.store import STAGE_LOG


def _run_together(tmp_path: Path, n: int) -> tuple[list[subprocess.CompletedProcess], float]:
    """Start n `python -m benchmark run` processes on one tiny config and store at once; wait for all of them."""
    raw = tiny_raw(tmp_path)
    raw["training"]["epochs"] = 1
    config = write_toml(tmp_path / "tiny.toml", raw)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # n processes share few cores
    command = [sys.executable, "-m", "benchmark", "run", "--matrix", "--config", str(config), "--no-progress"]
    start = time.perf_counter()
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(n)]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done, time.perf_counter() - start


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 4])
def test_concurrent_runs_compute_each_artifact_once(tmp_path: Path, n: int) -> None:
    done, seconds = _run_together(tmp_path, n)
    assert [p.returncode for p in done] == [0] * n, [p.stderr[-2000:] for p in done if p.returncode]
    store = tmp_path / "runs"
    log = [json.loads(line) for line in (store / STAGE_LOG).read_text().splitlines()]
    counts = Counter(e["key"] for e in log)
    stored = {p.name for p in (store / "objects").glob("*/*") if (p / "_artifact.json").is_file()}
    assert set(counts) == stored and set(counts.values()) == {1}, counts  # each artifact computed exactly once
    records = sorted(p for p in (store / "records").iterdir() if (p / "manifest.json").is_file())
    assert len(records) == n and len({p.name for p in records}) == n
    assert (store / "records" / "LATEST").read_text().strip() in {p.name for p in records}
    manifests = [json.loads((p / "manifest.json").read_text()) for p in records]
    planned = {frozenset(s["key"] for s in m["stages"]) for m in manifests}
    assert len(planned) == 1, "the runs planned different keys: was the code edited while they ran?"
    tables = [pd.read_csv(p / "results.csv") for p in records]
    for table in tables[1:]:
        pd.testing.assert_frame_equal(tables[0], table)
    statuses = Counter(s["status"] for m in manifests for s in m["stages"])
    assert statuses["done"] == len(stored) and statuses["failed"] == statuses["skipped"] == 0
    by = Counter(e["run_id"] for e in log)
    print(f"\n{n} processes: {len(stored)} artifacts, each computed once, {len(records)} records, "
          f"statuses {dict(statuses)}, computed per run {sorted(by.values(), reverse=True)}, {seconds:.1f} s")
