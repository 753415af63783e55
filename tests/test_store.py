"""The content-addressed store: atomic, computed once, never trusts half an artifact."""
from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import pytest

from benchmark.store import Store, stage_key


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
