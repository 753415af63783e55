"""The content-addressed store: atomic, computed once, never trusts half an artifact."""
from __future__ import annotations

import json
import multiprocessing as mp
import time
from pathlib import Path

import pytest

from benchmark.execution.store import Store, stage_key


def test_key_depends_on_everything_that_decides_the_result() -> None:
    base = stage_key("train", {"lr": 1}, ["a"], {"model": "v1"})
    assert base == stage_key("train", {"lr": 1}, ["a"], {"model": "v1"})
    assert len({base, stage_key("train", {"lr": 2}, ["a"], {"model": "v1"}),
                stage_key("train", {"lr": 1}, ["b"], {"model": "v1"}),
                stage_key("train", {"lr": 1}, ["a"], {"model": "v2"}),
                stage_key("attack", {"lr": 1}, ["a"], {"model": "v1"})}) == 5


def test_compute_once_then_cached(tmp_path: Path) -> None:
    store, calls = Store(tmp_path), []

    def build(out: Path) -> None:
        calls.append(1)
        (out / "x.txt").write_text("hello")

    path, computed = store.compute("k" * 64, build, {"kind": "t"})
    assert computed and (path / "x.txt").read_text() == "hello"
    path2, computed2 = store.compute("k" * 64, build)
    assert path2 == path and not computed2 and len(calls) == 1
    assert store.info("k" * 64)["kind"] == "t"
    _, forced = store.compute("k" * 64, build, force=True)
    assert forced and len(calls) == 2 and (path / "x.txt").read_text() == "hello"


def test_failed_build_leaves_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path)

    def build(out: Path) -> None:
        (out / "half.bin").write_bytes(b"123")
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        store.compute("f" * 64, build)
    assert not store.has("f" * 64)
    assert not store.path("f" * 64).exists()
    assert list((tmp_path / "tmp").iterdir()) == []


def test_stale_temp_and_half_folder_are_swept(tmp_path: Path) -> None:
    store = Store(tmp_path)
    key = "a" * 64
    (tmp_path / "tmp" / f"{key}.dead").mkdir(parents=True)
    store.path(key).mkdir(parents=True)  # a folder without its completion record is never trusted
    assert not store.has(key)
    store.compute(key, lambda out: (out / "ok").write_text("1"))
    assert store.has(key) and not (tmp_path / "tmp" / f"{key}.dead").exists()


def _slow_build(root: str, counter: str) -> None:
    def build(out: Path) -> None:
        with open(counter, "a") as f:
            f.write("x")
        time.sleep(0.5)
        (out / "v").write_text("1")
    Store(root).compute("c" * 64, build)


def test_two_processes_compute_an_artifact_once(tmp_path: Path) -> None:
    counter = tmp_path / "count.txt"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_slow_build, args=(str(tmp_path / "s"), str(counter))) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert counter.read_text() == "x"
    assert Store(tmp_path / "s").has("c" * 64)


def _hold_and_finish(root: str, key: str, held: str) -> None:
    """Take key's lock, signal it is held, wait, then store the artifact (another run finishing first)."""
    def build(out: Path) -> None:
        Path(held).write_text("1")
        time.sleep(1.5)
        (out / "v").write_text("theirs")
    Store(root).compute(key, build, {"kind": "t", "run_id": "theirs"})


@pytest.mark.parametrize("force", [False, True])
def test_a_compute_that_waited_reuses_what_another_process_stored(tmp_path: Path, force: bool) -> None:
    store, key, held = Store(tmp_path / "s"), "e" * 64, tmp_path / "held"
    proc = mp.get_context("spawn").Process(target=_hold_and_finish, args=(str(store.root), key, str(held)))
    proc.start()
    end = time.time() + 60
    while not held.exists() and time.time() < end:
        time.sleep(0.02)
    assert held.exists(), "the other process never took the lock"
    calls: list[int] = []
    path, computed = store.compute(key, lambda out: calls.append(1), {"run_id": "mine"}, force=force)
    proc.join(60)
    assert proc.exitcode == 0
    assert not computed and not calls  # waited on the lock, found it stored: neither rebuilt nor replaced
    assert (path / "v").read_text() == "theirs" and store.info(key)["run_id"] == "theirs"
    inode, created = path.stat().st_ino, store.info(key)["created"]
    _, again = store.compute(key, lambda out: calls.append(1))
    assert not again and path.stat().st_ino == inode and store.info(key)["created"] == created
    log = [json.loads(line) for line in (store.root / "stage-log.jsonl").read_text().splitlines()]
    assert [(e["key"], e["run_id"], e["pid"]) for e in log] == [(key, "theirs", proc.pid)]


def test_stage_log_has_one_line_per_computed_artifact(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.compute("a" * 64, lambda out: None, {"kind": "data", "label": "data x", "run_id": "r1"})
    store.compute("a" * 64, lambda out: None)  # cached: no line
    store.compute("a" * 64, lambda out: None, {"kind": "data", "label": "data x"}, force=True)
    log = [json.loads(line) for line in (tmp_path / "stage-log.jsonl").read_text().splitlines()]
    assert [(e["key"], e["kind"], e["label"], e["run_id"]) for e in log] == [
        ("a" * 64, "data", "data x", "r1"), ("a" * 64, "data", "data x", None)]
    assert all(set(e) == {"key", "kind", "label", "pid", "run_id", "seconds", "time"} for e in log)
