"""Malformed DICOM: every header field the reader uses, mutated; the reader loads or skips with a one-line reason."""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from benchmark.data.dicom_io import SyntheticDicomMeta, quantize, write_mammogram
from benchmark.data.preprocess_cache import cached_read
from benchmark.data.record_reader import Record, read_records
from benchmark.errors import BenchmarkError

SECRET_NAME = "DOE^JANE_MRN123456.dcm"  # file names of real data sets carry names and record numbers
SIZE = 24
# Every field load_pixels and read_mammogram read (TransferSyntaxUID lives in the file meta).
FIELDS = ["PixelData", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
          "SamplesPerPixel", "PhotometricInterpretation", "NumberOfFrames", "WindowCenter", "WindowWidth",
          "VOILUTFunction", "VOILUTSequence", "ModalityLUTSequence", "RescaleSlope", "RescaleIntercept",
          "PixelPaddingValue", "PresentationLUTShape", "PixelSpacing", "ImagerPixelSpacing", "Modality",
          "SOPClassUID", "ImageLaterality", "Laterality", "ViewPosition", "ImageComments", "TransferSyntaxUID"]
ODD_TEXT = ["", "abc", "-1", "0", "NaN", "inf", "-inf", "1e308", "-1e308", "99999999999", "1\\2\\3", "0\\0",
            "MONOCHROME3", "INVERSE", "\u00e9\u00e8", " " * 9, "4096\\0\\12", "1.2.3", "1.2.840.10008.1.2.4.90"]
VRS = ["US", "SS", "UL", "SL", "FL", "FD", "OB", "OW", "UN", "DS", "IS", "CS", "LO", "UI", "SQ", "AT"]


def _image(h: int = 64, w: int = 48) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(float)
    return np.where((x / 40) ** 2 + ((y - h / 2) / 28) ** 2 < 1, 0.35 + 0.15 * np.sin(y / 5) ** 2, 0.02)


def _voi_lut(ds: Dataset) -> None:
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.add_new("LUTData", "US", [int(v) for v in np.linspace(0, 65535, 4096)])
    ds.VOILUTSequence = [item]


def _good_file(path: Path, photometric: str = "MONOCHROME2", window: bool = True, lut: bool = False,
               bits: int = 12, image: np.ndarray | None = None) -> Path:
    """A valid small MG file; without window: the WindowCenter, WindowWidth and VOILUTFunction deleted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = SyntheticDicomMeta("img", 1, "CC", "L", 0.1, bits_stored=bits, photometric=photometric)
    write_mammogram(path, quantize(_image() if image is None else image, bits), meta)
    if not window or lut:
        ds = pydicom.dcmread(path)
        if not window:
            del ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction
        if lut:
            _voi_lut(ds)
        ds.save_as(path)
    return path


def _raw(ds: Dataset, keyword: str, vr: str, data: bytes) -> None:
    """Put a raw element (any VR, any bytes) that pydicom converts only when the reader asks for it."""
    tag = Tag(keyword)
    data += b"\0" * (len(data) % 2)
    ds[tag] = RawDataElement(tag, vr, len(data), data, 0, False, True)


def _mutate(ds: Dataset, keyword: str, kind: str, text: str, vr: str, blob: bytes) -> None:
    target = ds.file_meta if keyword == "TransferSyntaxUID" else ds
    if kind == "delete":
        if keyword in target:
            delattr(target, keyword)
    elif kind == "value":
        _raw(target, keyword, dictionary_VR(keyword) if keyword != "PixelData" else "OB", text.encode("latin-1"))
    else:  # a value of another VR, raw bytes
        _raw(target, keyword, vr, blob)


def _check(path: Path, counts: Counter) -> None:
    """The reader's contract: a finite float32 (SIZE, SIZE) array in [0,1], or a one-line path-free BenchmarkError."""
    try:
        arr, _ = cached_read(path, SIZE)
    except BenchmarkError as exc:
        message = str(exc)
        assert "\n" not in message and message.strip()
        assert str(path) not in message and "MRN123456" not in message and "DOE" not in message, message
        counts["skipped"] += 1
        counts[f"reason: {message.split(';')[0].split('(')[0][:60].strip()}"] += 1
        return
    assert arr.shape == (SIZE, SIZE) and arr.dtype == np.float32
    assert np.isfinite(arr).all() and arr.min() >= 0.0 and arr.max() <= 1.0
    counts["loaded"] += 1


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    folder = tmp_path_factory.mktemp("bases")
    files = [_good_file(folder / "a.dcm"), _good_file(folder / "b.dcm", "MONOCHROME1"),
             _good_file(folder / "c.dcm", window=False), _good_file(folder / "d.dcm", "MONOCHROME1", window=False),
             _good_file(folder / "e.dcm", lut=True), _good_file(folder / "f.dcm", window=False, bits=16)]
    return [f.read_bytes() for f in files]


@pytest.fixture(scope="module")
def fuzz_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Counter]]:
    counts: Counter = Counter()
    yield tmp_path_factory.mktemp("fuzz") / SECRET_NAME, counts
    print(f"\nDICOM fuzz: {counts['tried']} mutated files tried, {counts['loaded']} loaded, "
          f"{counts['skipped']} skipped with a reason, {counts['unwritable']} mutations pydicom could not write")
    for key, n in sorted(((k, n) for k, n in counts.items() if k.startswith("reason: ")), key=lambda kv: -kv[1]):
        print(f"  {n:4d}  {key[8:]}")


MUTATION = st.tuples(st.sampled_from(FIELDS), st.sampled_from(["delete", "value", "vr"]), st.sampled_from(ODD_TEXT),
                     st.sampled_from(VRS), st.binary(max_size=24))


@settings(max_examples=400, deadline=2000, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(base=st.integers(0, 5), mutations=st.lists(MUTATION, min_size=1, max_size=3),
       cut=st.one_of(st.none(), st.floats(0.0, 1.0)))
def test_mutated_headers_load_or_skip_with_a_reason(bases: list[bytes], fuzz_state: tuple[Path, Counter],
                                                     base: int, mutations: list, cut: float | None) -> None:
    path, counts = fuzz_state
    path.write_bytes(bases[base])
    ds = pydicom.dcmread(path)
    for mutation in mutations:
        _mutate(ds, *mutation)
    try:
        ds.save_as(path, enforce_file_format=False)
    except Exception:
        counts["unwritable"] += 1
        return
    if cut is not None:  # truncated anywhere, header or pixels
        data = path.read_bytes()
        path.write_bytes(data[:int(cut * len(data))])
    counts["tried"] += 1
    _check(path, counts)


# --- a folder with good files and one of each malformed kind, through read_records --------------------------------

def _edit(path: Path, change) -> Path:
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path)
    return path


def _bad_files(root: Path) -> dict[str, Path]:
    """One file of each malformed kind, each named like a real export: <kind>/DOE^JANE_MRN123456.dcm."""
    def good(kind: str, **kwargs: object) -> Path:
        return _good_file(root / kind / SECRET_NAME, **kwargs)

    def no_lut_data(ds: Dataset) -> None:
        _voi_lut(ds)
        del ds.VOILUTSequence[0].LUTData

    bad = {"window-width-0": _edit(good("window-width-0"), lambda ds: _raw(ds, "WindowWidth", "DS", b"0 ")),
           "frames-text": _edit(good("frames-text"), lambda ds: _raw(ds, "NumberOfFrames", "IS", b"many")),
           "voi-lut": _edit(good("voi-lut"), no_lut_data),
           "spacing": _edit(good("spacing"), lambda ds: _raw(ds, "PixelSpacing", "DS", b"0.1\\x")),
           "bad-vr": _edit(good("bad-vr"), lambda ds: _raw(ds, "Rows", "FD", b"\0" * 8)),
           "all-black": good("all-black", image=np.zeros((64, 48))),
           "constant": good("constant", image=np.full((64, 48), 0.5))}
    truncated = good("truncated")
    truncated.write_bytes(truncated.read_bytes()[:1500])
    (root / "not-dicom").mkdir()
    (root / "not-dicom" / SECRET_NAME).write_text("DOE^JANE MRN123456 notes, not an image\n" * 30)
    return {**bad, "truncated": truncated, "not-dicom": root / "not-dicom" / SECRET_NAME}


def _spec(skip_bad: bool = True) -> SimpleNamespace:
    return SimpleNamespace(image_size=SIZE, seed=0, skip_bad=skip_bad, split=(0.6, 0.2, 0.2))


def test_a_folder_loads_the_good_files_and_lists_the_bad_ones_without_names(tmp_path: Path) -> None:
    root = tmp_path / "export"
    good = [_good_file(root / "good" / f"{i:02d}.dcm", "MONOCHROME1" if i % 2 else "MONOCHROME2", window=i % 3 > 0)
            for i in range(20)]
    bad = _bad_files(root)
    records = [Record(p, i % 2, f"pat{i}", f"img{i}") for i, p in enumerate(good)]
    records += [Record(p, 0, "DOE^JANE", f"bad-{kind}") for kind, p in bad.items()]
    records.append(Record(good[0], None, "pat0", "label-fails", label_from_info=lambda info: info["no such key"]))
    data = read_records("folder", _spec(), records, {"root": str(root)}, {})
    assert len(data) == 20 and data.images.shape == (20, 1, SIZE, SIZE)
    skipped = data.meta["skipped"]
    assert len(skipped) == len(bad) + 1 and all(set(s) == {"file", "reason"} for s in skipped)
    assert len({s["file"] for s in skipped}) == len(skipped) and all(s["file"].startswith("f") for s in skipped)
    text = json.dumps(skipped)
    assert "MRN123456" not in text and "DOE" not in text and str(root) not in text and "export" not in text
    reasons = [s["reason"] for s in skipped]
    expected = ["WindowWidth is 0", "NumberOfFrames is many", "VOILUTSequence item has no LUTData", "PixelSpacing",
                "Rows", "constant image (all pixels 0)", "constant image (all pixels 2048)", "truncated",
                "not a DICOM file", "KeyError"]
    for reason, part in zip(reasons, expected):
        assert part in reason and "\n" not in reason, (part, reason)


def test_skip_bad_off_names_the_file_token_only(tmp_path: Path) -> None:
    root = tmp_path / "export"
    bad = _bad_files(root)["window-width-0"]
    with pytest.raises(BenchmarkError) as info:
        read_records("folder", _spec(skip_bad=False), [Record(bad, 0, "p", "i")], {"root": str(root)}, {})
    message = str(info.value)
    assert "WindowWidth is 0" in message and "MRN123456" not in message and str(root) not in message
    assert message.startswith("data set folder: file f") and "\n" not in message
