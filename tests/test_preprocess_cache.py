"""Preprocessing cache: same arrays as the reader, no DICOM opened on a hit, invalidation, atomic JSON/NPY entries."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest

from benchmark.data import dicom_io, preprocess_cache
from benchmark.data.dicom_io import (
    SyntheticDicomMeta,
    quantize,
    read_mammogram,
    write_mammogram,
)
from benchmark.data.preprocess_cache import cache_key, cached_read
from benchmark.errors import BenchmarkError


def _write(path: Path, shade: float = 0.4, photometric: str = "MONOCHROME2") -> Path:
    y, x = np.mgrid[0:128, 0:96].astype(float)
    image = np.where((x / 70) ** 2 + ((y - 64) / 55) ** 2 < 1, shade + 0.2 * np.sin(y / 6) ** 2, 0.0)
    meta = SyntheticDicomMeta("c1", 3, "CC", "L", 0.1, photometric=photometric)
    write_mammogram(path, quantize(image, 12), meta)
    return path


def _no_dicom_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the DICOM was opened")
    monkeypatch.setattr(pydicom, "dcmread", refuse)


def _entries(folder: Path) -> list[str]:
    return sorted(p.suffix for p in folder.rglob("*") if p.is_file())


def test_hit_returns_the_same_array_and_info_without_opening_the_file(tmp_path: Path, monkeypatch) -> None:
    path = _write(tmp_path / "a.dcm", photometric="MONOCHROME1")
    expected, expected_info = read_mammogram(path, 40)
    with preprocess_cache.using(tmp_path / "cache") as stats:
        first, info = cached_read(path, 40)
        assert (stats.hits, stats.misses) == (0, 1)
        _no_dicom_reads(monkeypatch)
        second, info2 = cached_read(path, 40)
        assert (stats.hits, stats.misses) == (1, 1)
    np.testing.assert_array_equal(first, expected)
    np.testing.assert_array_equal(second, expected)
    assert second.dtype == np.float32 and second.shape == (40, 40)
    assert info == info2 == expected_info  # tuples (shapes, boxes) come back as tuples
    assert isinstance(info2["crop_box"], tuple) and isinstance(info2["original_shape"], tuple)
    assert _entries(tmp_path / "cache") == [".json", ".npy"]  # no temp files, no pickles
    npy = next((tmp_path / "cache").rglob("*.npy"))
    np.testing.assert_array_equal(np.load(npy, allow_pickle=False), expected)
    assert json.loads(npy.with_suffix(".json").read_text())["inverted"] is True


def test_without_a_cache_every_read_opens_the_file(tmp_path: Path, monkeypatch) -> None:
    path = _write(tmp_path / "a.dcm")
    cached_read(path, 32)
    assert preprocess_cache.active() is None
    _no_dicom_reads(monkeypatch)
    with pytest.raises(BenchmarkError, match="the DICOM was opened"):
        cached_read(path, 32)


def test_changed_file_size_or_options_miss(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.dcm", shade=0.3)
    with preprocess_cache.using(tmp_path / "cache") as stats:
        old, _ = cached_read(path, 32)
        stat = path.stat()
        _write(path, shade=0.6)  # same byte count, new content
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        new, _ = cached_read(path, 32)
        assert stats.misses == 2 and not np.array_equal(old, new)
        np.testing.assert_array_equal(new, read_mammogram(path, 32)[0])
        cached_read(path, 48)
        _, info = cached_read(path, 32, crop=False)
        assert stats.misses == 4 and info["crop_box"] == (0, 128, 0, 96)
        cached_read(path, 32, crop=False)
        assert stats.hits == 1
    key = cache_key(path, 32, {})
    assert key != cache_key(path, 32, {"crop": False}) and key != cache_key(path, 64, {})
    assert cache_key(path, 32, {"allowed_modalities": ("mg",)}) == cache_key(path, 32, {"allowed_modalities": ["MG"]})
    assert cache_key(tmp_path / "missing.dcm", 32, {}) is None


def test_reader_code_version_is_part_of_the_key(tmp_path: Path, monkeypatch) -> None:
    path = _write(tmp_path / "a.dcm")
    key = cache_key(path, 32, {})
    monkeypatch.setattr(preprocess_cache, "_reader_version", lambda: "another-reader")
    assert cache_key(path, 32, {}) != key


def test_damaged_entry_is_rebuilt_and_errors_are_not_cached(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.dcm")
    with preprocess_cache.using(tmp_path / "cache") as stats:
        expected, _ = cached_read(path, 32)
        npy = next((tmp_path / "cache").rglob("*.npy"))
        npy.write_bytes(npy.read_bytes()[:50])
        again, _ = cached_read(path, 32)
        np.testing.assert_array_equal(again, expected)
        assert stats.misses == 2
        bad = tmp_path / "bad.dcm"
        bad.write_bytes(b"not a dicom at all" * 20)
        for _ in range(2):
            with pytest.raises(BenchmarkError, match="not a DICOM"):
                cached_read(bad, 32)
    assert _entries(tmp_path / "cache") == [".json", ".npy"]


def test_unwritable_cache_still_reads(tmp_path: Path, monkeypatch) -> None:
    path = _write(tmp_path / "a.dcm")
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    with preprocess_cache.using(blocker) as stats:
        arr, _ = cached_read(path, 32)
    assert stats.write_errors == 1
    np.testing.assert_array_equal(arr, dicom_io.read_mammogram(path, 32)[0])
